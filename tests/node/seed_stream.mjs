// The seed's Node.js example (Model Studio "深度思考" page), unchanged but for baseURL and the model
// name, which come from the environment. Prints JSON lines the pytest side checks.
import OpenAI from "openai";
import process from 'process';

const openai = new OpenAI({
    apiKey: process.env.DASHSCOPE_API_KEY,
    baseURL: process.env.THINKSERVE_BASE_URL
});

let reasoningContent = '';
let answerContent = '';
let isAnswering = false;

async function main() {
    try {
        const messages = [{ role: 'user', content: '你是誰' }];
        const stream = await openai.chat.completions.create({
            model: process.env.THINKSERVE_MODEL || 'qwen-plus',
            messages,
            enable_thinking: true,
            stream: true,
            stream_options: {
                include_usage: true
            },
        });
        for await (const chunk of stream) {
            if (!chunk.choices?.length) {
                console.log(JSON.stringify({ usage: chunk.usage }));
                continue;
            }
            const delta = chunk.choices[0].delta;
            if (delta.reasoning_content !== undefined && delta.reasoning_content !== null) {
                reasoningContent += delta.reasoning_content;
            }
            if (delta.content !== undefined && delta.content) {
                isAnswering = true;
                answerContent += delta.content;
            }
        }
        console.log(JSON.stringify({ reasoning: reasoningContent, answer: answerContent, isAnswering }));
    } catch (error) {
        console.log(JSON.stringify({ error: String(error) }));
        process.exit(1);
    }
}

main();
