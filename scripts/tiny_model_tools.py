"""Agent conversations for the tiny Qwen3 test model (used by make_tiny_model.py): tool calls in
Qwen3's Hermes format, answers from a tool's result, the built-in ``search`` tool, search results in
the system turn, and JSON answers.

Each maker returns an ``Exchange``: the conversation before the model's turn (OpenAI-style messages,
with ``tool_calls`` and ``tool`` turns where the exchange has them), the tools the template renders,
the reasoning and the answer to learn. A call is written the way Qwen3's template writes an
assistant's ``tool_calls``, which is also what thinkserve parses::

    <tool_call>
    {"name": "get_current_weather", "arguments": {"location": "Hangzhou"}}
    </tool_call>

The weather and time tools are Model Studio's function-calling example, descriptions and all, so the
tests can run that example unchanged; the ``search`` tool is thinkserve's built-in one
(``thinkserve.search.tool.SearchTool.schema``), which this module must follow.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tiny_model_data import COUNTRIES, FILLERS, OPPOSITES, PUNCT, TOPICS, make_sample, one_of, salad

CLOSE = "Now I can answer.|Let me write the answer.|I am ready to reply.|Time to answer."


def _fn(name: str, description: str, parameters: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {"name": name, "description": description, "parameters": parameters},
    }


def _obj(required: list[str], **props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": required}


STR = {"type": "string"}
EXAMPLE_TIME = _fn("get_current_time", "当你想知道现在的时间时非常有用。", {})
EXAMPLE_WEATHER = _fn(
    "get_current_weather",
    "当你想查询指定城市的天气时非常有用。",
    _obj(
        ["location"], location={"type": "string", "description": "城市或县区，比如北京市、杭州市、余杭区等。"}
    ),
)
WEATHER_EN = _fn(
    "get_current_weather",
    "Get the current weather in a given location.",
    _obj(
        ["location"],
        location={"type": "string", "description": "The city, e.g. Hangzhou"},
        unit={"type": "string", "enum": ["celsius", "fahrenheit"]},
    ),
)
SEARCH = _fn(
    "search",
    "Search the web (or the operator's document collection) for current or specific information. "
    "Returns numbered results with title, URL and an excerpt.",
    _obj(
        ["query"],
        query={"type": "string", "description": "What to search for, in a few words."},
        strategy={
            "type": "string",
            "enum": ["max", "turbo"],
            "description": "turbo: a few results, fast; max: more results.",
        },
    ),
)
STOCK = _fn("get_stock_price", "Get the latest price of a stock.", _obj(["symbol"], symbol=STR))
RATE = _fn(
    "get_exchange_rate",
    "Exchange rate between two currencies.",
    _obj(["base", "target"], base=STR, target=STR),
)
ORDER = _fn("lookup_order", "Look up the status of an order by its id.", _obj(["order_id"], order_id=STR))
EMAIL = _fn("send_email", "Send an email.", _obj(["to", "subject"], to=STR, subject=STR))
OTHERS = (STOCK, RATE, ORDER, EMAIL, EXAMPLE_TIME)

CITIES = (
    "Hangzhou:杭州 Beijing:北京 Shanghai:上海 Shenzhen:深圳 Chengdu:成都 Wuhan:武汉 Nanjing:南京 Xi'an:西安 "
    "Tokyo:东京 Paris:巴黎 London:伦敦 Berlin:柏林 Seattle:西雅图 Sydney:悉尼 Cairo:开罗 Lima:利马"
).split()
CITIES_PAIRS = [tuple(c.split(":")) for c in CITIES]
CONDITIONS = ("晴天", "多云", "雨天")
SYMBOLS = "BABA AAPL MSFT NVDA TSLA AMZN IBM ORCL".split()
CURRENCIES = "USD EUR CNY JPY GBP CHF".split()
NAMES = "alice bob carol dave erin frank".split()


@dataclass
class Exchange:
    """The conversation before the model's turn, its tools, and what the model should write."""

    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None
    reasoning: str
    answer: str
    thinking: bool | None = None
    """True/False: only in that mode (JSON answers); None: either."""
    extra: dict[str, Any] = field(default_factory=dict)


def call_text(name: str, arguments: dict[str, Any]) -> str:
    """One call as Qwen3's template renders an assistant's ``tool_calls`` (json.dumps spacing)."""
    return (
        "<tool_call>\n"
        + json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)
        + "\n</tool_call>"
    )


def _offer(rng: random.Random, tool: dict[str, Any], *, search: bool = True) -> list[dict[str, Any]]:
    """``tool`` among 0-3 others, in a random order (the example's pair most often); ``search``
    False leaves the search tool out (a question it could answer would then call it)."""
    name = tool["function"]["name"]
    if name in ("get_current_weather", "get_current_time") and rng.random() < 0.5:
        return [EXAMPLE_TIME, EXAMPLE_WEATHER]
    others = [t for t in (*OTHERS, *((SEARCH,) if search else ())) if t["function"]["name"] != name]
    tools = [tool, *rng.sample(others, rng.randint(0, 3))]
    rng.shuffle(tools)
    return tools


def _parts(rng: random.Random, first: str, *rest: str) -> str:
    fillers = rng.sample(FILLERS, rng.randint(0, 2))
    return " ".join([first, *fillers, *rest, one_of(rng, CLOSE)])


@dataclass
class Call:
    """A request that one tool answers."""

    user: str
    tool: dict[str, Any]
    arguments: dict[str, Any]
    why: str
    result: str
    answer: str


def _weather(rng: random.Random) -> Call:
    en, zh = rng.choice(CITIES_PAIRS)
    chinese = rng.random() < 0.4
    city = zh if chinese else en
    if chinese:
        user = one_of(rng, "{c}天气怎么样|今天{c}的天气怎么样{q}|{c}现在的天气如何{q}|查一下{c}的天气", c=zh)
    else:
        user = one_of(
            rng,
            "What is the weather like in {c} right now? Use the tool.|What's the weather in {c}?|"
            "Is it raining in {c}?|How is the weather in {c} today?|Weather in {c}, please.",
            c=en,
        )
    cond = rng.choice(CONDITIONS)
    result = rng.choice((f"{city}今天是{cond}。", f"{city}: sunny, 24 °C.", f"{city}今天是{cond}。"))
    answer = one_of(rng, "{r}|According to the tool: {r}|The weather in {c}: {r}", r=result, c=city)
    tool = EXAMPLE_WEATHER if rng.random() < 0.7 else WEATHER_EN
    why = (
        f"The user asks about the weather in {city}. "
        "The get_current_weather tool can tell me, so I will call it."
    )
    return Call(user, tool, {"location": city}, why, result, answer)


def _time(rng: random.Random) -> Call:
    user = one_of(
        rng, "What time is it?|现在几点了{q}|What is the current time? Use the tool.|现在是什么时间{q}"
    )
    day = f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    stamp = f"{day} {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00"
    result = f"当前时间：{stamp}。"
    why = "The user wants the current time. The get_current_time tool gives it; it takes no arguments."
    return Call(user, EXAMPLE_TIME, {}, why, result, one_of(rng, "{r}|It is {s}.", r=result, s=stamp))


def _stock(rng: random.Random) -> Call:
    sym = rng.choice(SYMBOLS)
    user = one_of(rng, "What is the stock price of {s}?|How much is {s} stock now?|{s} price?", s=sym)
    price = f"{rng.randint(10, 900)}.{rng.randint(0, 99):02d}"
    why = f"The user asks for the price of {sym}. I will call get_stock_price."
    return Call(user, STOCK, {"symbol": sym}, why, f"{sym}: {price} USD", f"{sym} trades at {price} USD.")


def _rate(rng: random.Random) -> Call:
    base, target = rng.sample(CURRENCIES, 2)
    user = one_of(rng, "How many {t} is one {b}?|Exchange rate from {b} to {t}?", b=base, t=target)
    rate = f"{rng.randint(0, 9)}.{rng.randint(10, 99)}"
    why = f"The user wants the rate from {base} to {target}. I will call get_exchange_rate."
    return Call(user, RATE, {"base": base, "target": target}, why, rate, f"One {base} is {rate} {target}.")


def _order(rng: random.Random) -> Call:
    order = str(rng.randint(10000, 99999))
    user = one_of(rng, "Where is my order {o}?|What is the status of order {o}?", o=order)
    status = rng.choice(("shipped", "delivered", "processing"))
    why = f"The user asks about order {order}. I will call lookup_order with that id."
    return Call(user, ORDER, {"order_id": order}, why, f"Order {order}: {status}", f"Your order is {status}.")


def _email(rng: random.Random) -> Call:
    to = rng.choice(NAMES) + "@example.com"
    subject = rng.choice(("Hello", "Meeting", "Lunch"))
    user = f"Send an email to {to} with the subject {subject}."
    why = f"The user wants an email sent to {to}. I will call send_email."
    return Call(user, EMAIL, {"to": to, "subject": subject}, why, "sent", "The email was sent.")


def _search_question(rng: random.Random) -> tuple[str, str, str]:
    """A question, what to search for, and a one-line excerpt that answers it."""
    if rng.random() < 0.5:
        country, capital = rng.choice(COUNTRIES)
        return (
            f"What is the capital of {country}?",
            f"capital of {country}",
            f"The capital of {country} is {capital}.",
        )
    if rng.random() < 0.5:
        word, opp = rng.choice(OPPOSITES)
        return f"What is the opposite of {word}?", f"opposite of {word}", f"The opposite of {word} is {opp}."
    topic = rng.choice(TOPICS)
    question = one_of(rng, "Tell me about {t}.|Search for {t}.|Look up {t}.|What is new about {t}?", t=topic)
    return question, topic, f"{topic[0].upper() + topic[1:]} is an interesting subject."


def _search(rng: random.Random) -> Call:
    question, query, excerpt = _search_question(rng)
    n = rng.randint(1, 3)
    title = query.title()
    results = [f"[1] {title}\nURL: file:///srv/docs/{query.replace(' ', '-')}.md\n{excerpt}"]
    for i in range(2, n + 1):
        results.append(f"[{i}] {salad(rng).user[:40]}\nURL: https://example.com/{i}\n{salad(rng).user[:80]}")
    why = "The user asks something I should look up. I have the search tool, so I will search for it."
    answer = one_of(rng, "{e} [1]|{e}[1]|According to the search, {e} [1]", e=excerpt.rstrip("."))
    return Call(question, SEARCH, {"query": query}, why, "\n\n".join(results), answer)


CALLS: tuple[Callable[[random.Random], Call], ...] = (_weather, _time, _stock, _rate, _order, _email, _search)
CALL_WEIGHTS = (0.35, 0.12, 0.08, 0.08, 0.08, 0.06, 0.23)


def _system(rng: random.Random) -> list[dict[str, Any]]:
    if rng.random() < 0.3:
        return [{"role": "system", "content": one_of(rng, "You are a helpful assistant.|Answer briefly.")}]
    return []


def tool_call(rng: random.Random) -> Exchange:
    """Tools offered and the user asks what one of them answers: the model calls it."""
    c = rng.choices(CALLS, weights=CALL_WEIGHTS)[0](rng)
    messages = [*_system(rng), {"role": "user", "content": c.user}]
    reasoning = _parts(rng, c.why)
    return Exchange(
        messages, _offer(rng, c.tool), reasoning, call_text(c.tool["function"]["name"], c.arguments)
    )


def tool_answer(rng: random.Random) -> Exchange:
    """The call was made and its result came back: the model answers from it."""
    c = rng.choices(CALLS, weights=CALL_WEIGHTS)[0](rng)
    name = c.tool["function"]["name"]
    assistant: dict[str, Any] = {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"type": "function", "function": {"name": name, "arguments": c.arguments}}],
    }
    if rng.random() < 0.6:  # clients that send the reasoning back, and those that drop it
        assistant["reasoning_content"] = _parts(rng, c.why)
    messages = [
        *_system(rng),
        {"role": "user", "content": c.user},
        assistant,
        {"role": "tool", "content": c.result},
    ]
    reasoning = _parts(rng, "The tool returned its result.", "I will tell the user what it says.")
    return Exchange(messages, _offer(rng, c.tool), reasoning, c.answer)


def no_call(rng: random.Random) -> Exchange:
    """Tools offered, but the question needs none of them: an ordinary answer."""
    s = make_sample(rng)
    tool = rng.choice((EXAMPLE_WEATHER, STOCK, ORDER, EMAIL))
    tools = _offer(rng, tool, search=False)
    return Exchange([*_system(rng), {"role": "user", "content": s.user}], tools, s.reasoning, s.answer)


def searched(rng: random.Random) -> Exchange:
    """Search results in the system turn (``thinkserve.search.context``), then the question."""
    c = _search(rng)
    block = (
        f"# Search results\nResults of a search for: {c.user}\n\n{c.result}\n\n"
        "Use these results when they help answer. After a sentence that uses a result, cite it as [1] "
        "(the result's number)."
    )
    messages = [{"role": "system", "content": block}, {"role": "user", "content": c.user}]
    reasoning = _parts(rng, "The search results answer the question.", "I will cite the result I use.")
    return Exchange(messages, None, reasoning, c.answer)


def _json_value(rng: random.Random) -> tuple[str, str]:
    s = make_sample(rng)
    key = rng.choice(("answer", "answer", "result", "reply"))
    short = s.answer if len(s.answer) < 60 else s.answer[:40]
    value: Any = short
    if short.isdigit() or (short.startswith("-") and short[1:].isdigit()):
        value = int(short)
    return s.user, json.dumps({key: value}, ensure_ascii=False)


def json_answer(rng: random.Random) -> Exchange:
    """The user asks for JSON: a small JSON object, its strings closed (thinking mostly off, as
    JSON mode requires)."""
    user, answer = _json_value(rng)
    form = rng.random()
    if form < 0.4:
        messages = [
            {
                "role": "user",
                "content": one_of(rng, "{u} Answer in JSON.|{u} Reply as JSON.|{u} (json)", u=user),
            }
        ]
    elif form < 0.7:
        messages = [
            {
                "role": "user",
                "content": one_of(rng, "Reply in JSON: {u}|JSON only: {u}|Give JSON. {u}", u=user),
            }
        ]
    else:
        system = one_of(rng, "You answer in JSON.|Reply with a JSON object.|Output json.")
        messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
    reasoning = _parts(rng, "The user wants the answer as a JSON object.", "I will put it under one key.")
    return Exchange(messages, None, reasoning, answer, thinking=rng.random() < 0.2)


MAKERS: tuple[Callable[[random.Random], Exchange], ...] = (
    tool_call,
    tool_answer,
    no_call,
    searched,
    json_answer,
)
WEIGHTS = (0.4, 0.25, 0.1, 0.08, 0.17)


def make_exchange(rng: random.Random) -> Exchange:
    return rng.choices(MAKERS, weights=WEIGHTS)[0](rng)


__all__ = ["PUNCT", "Exchange", "call_text", "make_exchange"]
