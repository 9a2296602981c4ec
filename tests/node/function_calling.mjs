// Model Studio's function-calling example (Node.js, streamed, thinking on): the weather tool is
// called, its result fed back, and the final answer read. baseURL and the model come from the
// environment, and so does a temperature where a test pins one (THINKSERVE_TEMPERATURE: a small
// model sampled at the default decides to call or not by chance). Prints one JSON line per turn,
// which the pytest side checks.
import OpenAI from "openai";
import process from 'process';

const openai = new OpenAI({
    apiKey: process.env.DASHSCOPE_API_KEY,
    baseURL: process.env.THINKSERVE_BASE_URL
});

const tools = [
    {
        type: "function",
        function: {
            name: "get_current_time",
            description: "当你想知道现在的时间时非常有用。",
            parameters: {}
        }
    },
    {
        type: "function",
        function: {
            name: "get_current_weather",
            description: "当你想查询指定城市的天气时非常有用。",
            parameters: {
                type: "object",
                properties: {
                    location: { type: "string", description: "城市或县区，比如北京市、杭州市、余杭区等。" }
                },
                required: ["location"]
            }
        }
    }
];

const MAX_ROUNDS = Number(process.env.THINKSERVE_MAX_ROUNDS || 3);

async function turn(messages) {
    const stream = await openai.chat.completions.create({
        model: process.env.THINKSERVE_MODEL || 'qwen-plus',
        messages,
        tools,
        enable_thinking: true,
        stream: true,
        ...(process.env.THINKSERVE_TEMPERATURE ? { temperature: Number(process.env.THINKSERVE_TEMPERATURE) } : {}),
    });
    let reasoning = '';
    let content = '';
    let finish = null;
    const toolCalls = [];
    for await (const chunk of stream) {
        if (!chunk.choices?.length) continue;
        const choice = chunk.choices[0];
        const delta = choice.delta;
        finish = choice.finish_reason || finish;
        if (delta.reasoning_content) reasoning += delta.reasoning_content;
        if (delta.content) content += delta.content;
        for (const call of delta.tool_calls || []) {
            if (!toolCalls[call.index]) {
                toolCalls[call.index] = { id: '', type: 'function', function: { name: '', arguments: '' } };
            }
            const entry = toolCalls[call.index];
            if (call.id) entry.id += call.id;
            if (call.function?.name) entry.function.name += call.function.name;
            if (call.function?.arguments) entry.function.arguments += call.function.arguments;
        }
    }
    console.log(JSON.stringify({ reasoning, content, finish, toolCalls }));
    return { reasoning, content, toolCalls };
}

async function main() {
    try {
        const messages = [{ role: 'user', content: '杭州天气怎么样' }];
        let result = await turn(messages);
        // The example loops until the model answers; capped here so that a model that keeps
        // calling cannot hold the test until its timeout.
        for (let round = 1; result.toolCalls.length && round <= MAX_ROUNDS; round++) {
            messages.push({ role: 'assistant', content: null, reasoning_content: result.reasoning, tool_calls: result.toolCalls });
            for (const call of result.toolCalls) {
                const args = JSON.parse(call.function.arguments);
                messages.push({ role: 'tool', tool_call_id: call.id, content: `${args.location}今天是晴天。` });
            }
            result = await turn(messages);
        }
    } catch (error) {
        console.log(JSON.stringify({ error: String(error) }));
        process.exit(1);
    }
}

main();
