"""Synthetic conversations for the tiny Qwen3 test model (used by make_tiny_model.py).

Simple, learnable exchanges: arithmetic, greetings, "who are you" in English and Chinese, facts,
counting, free-form requests and word salad. Each sample is a user turn, a reasoning text made of
short parts (so it can be cut anywhere by a thinking budget) and a short answer. Answers may be
wrong: what the model must learn is the format.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

WORDS = (
    "apple river mountain music garden window teacher computer ocean winter summer bread coffee "
    "train city forest lamp paper story dragon castle robot planet star moon cloud rain snow tiger "
    "cat dog bird fish flower tree book chair table house road bridge ship island desert market "
    "school doctor engine battery camera phone letter song dance game puzzle number color light "
    "shadow mirror clock key door stone sand fire water wind earth metal glass silver gold green "
    "blue red yellow purple orange black white small large quick slow happy sad bright dark warm "
    "cold old new simple strange quiet loud gentle brave clever lazy busy empty full early late "
    "python server network database kernel thread memory token model prompt answer question "
    "reason logic proof theory energy history science language poem joke recipe travel money"
).split()
GLUE = "the a is of and to in it that with for on".split()
TOPICS = (
    "the ocean|black holes|photosynthesis|the moon|coffee|machine learning|rain|the history of Rome|cats|"
    "volcanoes|music|friendship|the internet|bread|electricity|gravity|trees|winter|robots|the stars|"
    "prime numbers|chess|Python|databases|tea|mountains|dreams|time|the sun|bicycles"
).split("|")
COUNTRIES = [
    tuple(pair.split(":"))
    for pair in (
        "France:Paris Japan:Tokyo Italy:Rome Germany:Berlin Spain:Madrid China:Beijing Canada:Ottawa "
        "Egypt:Cairo Brazil:Brasilia Kenya:Nairobi Peru:Lima Norway:Oslo"
    ).split()
]
OPPOSITES = [
    tuple(pair.split(":"))
    for pair in "hot:cold big:small fast:slow up:down day:night happy:sad light:dark old:young "
    "open:closed early:late".split()
]
SYSTEM_PROMPTS = (
    "You are a helpful assistant.|You are a concise assistant.|Answer briefly.|"
    "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.|You are a friendly tutor.|"
    "Always be polite.|You are a math helper.|你是一個有幫助的助手{dot}"
)
FILLERS = (
    "Let me think about this carefully.|This should not be hard.|I want to get this right.|"
    "The user probably wants a short answer.|I should answer clearly and briefly.|There is no trick here.|"
    "Let me go step by step.|Nothing else is needed.|I will keep the reply short.|"
    "Wait, let me check that again.|Yes, that seems fine.|Hmm, okay.|I think that is enough.|"
    "A simple reply is best."
).split("|")
CLOSERS = "Now I can answer.|Let me write the answer.|I am ready to reply.|Time to answer."
OPS = {  # op: (symbol, reasoning step)
    "plus": ("+", "I add {a} and {b}."),
    "minus": ("-", "I subtract {b} from {a}."),
    "times": ("*", "I multiply {a} by {b}."),
}
# full-width punctuation for the Chinese texts (ruff flags the literal characters as confusable)
PUNCT = {"q": "\uff1f", "bang": "\uff01", "comma": "\uff0c", "dot": "\u3002"}


def one_of(rng: random.Random, options: str, **values: object) -> str:
    """One of the '|'-separated `options`, formatted with `values` and the full-width PUNCT."""
    return rng.choice(options.split("|")).format(**PUNCT, **values)


def _fillers(rng: random.Random, lo: int, hi: int) -> list[str]:
    return rng.sample(FILLERS, rng.randint(lo, hi))


@dataclass
class Sample:
    """One exchange: the user's text, the reasoning and the answer."""

    user: str
    reasoning: str
    answer: str


def _sample(rng: random.Random, user: str, parts: list[str], answer: str) -> Sample:
    return Sample(user, " ".join([*parts, one_of(rng, CLOSERS)]), answer)


def _arith(rng: random.Random) -> Sample:
    op = rng.choice(list(OPS))
    a = rng.randint(0, 99)
    b = rng.randint(0, 12) if op == "times" else rng.randint(0, 99)
    sym, step = OPS[op]
    c = {"plus": a + b, "minus": a - b, "times": a * b}[op]
    kw = {"a": a, "b": b, "c": c, "op": op, "sym": sym}
    user = one_of(
        rng,
        "What is {a} {op} {b}?|What's {a} {sym} {b}?|Compute {a} {op} {b}.|{a} {sym} {b} = ?|"
        "Can you tell me what {a} {op} {b} is?|Please calculate {a} {sym} {b}|how much is {a} {op} {b}|"
        "{a} {sym} {b}|{a}{sym}{b}|{a} {op} {b} {q}|{a} {sym} {b} 等於多少{q}",
        **kw,
    )
    parts = [
        one_of(
            rng,
            "Okay, the user asks what {a} {op} {b} is.|Alright, the user wants me to compute {a} {op} {b}.|"
            "Hmm, this is a simple arithmetic question about {a} {op} {b}.|Okay, let me see.",
            **kw,
        ),
        *_fillers(rng, 0, 1),
        step.format(**kw),
        "{a} {op} {b} gives {c}.".format(**kw),
    ]
    if rng.random() < 0.5:
        parts.append(f"Let me double-check: that gives {c} again.")
    parts += [*_fillers(rng, 0, 2), f"So the answer is {c}."]
    answer = one_of(rng, "{a} {op} {b} is {c}.|The answer is {c}.|{c}|{a} {sym} {b} = {c}", **kw)
    return _sample(rng, user, parts, answer)


def _greeting(rng: random.Random) -> Sample:
    chinese = rng.random() < 0.2
    if chinese:
        user = one_of(rng, "你好|你好{bang}|您好|嗨")
        answer = one_of(rng, "你好{bang}有什麼可以幫你的嗎{q}|你好{bang}")
    else:
        user = one_of(
            rng,
            "Hello|Hi!|Hey there|Good morning!|hello, how are you?|Hi, nice to meet you.|Good evening|yo|"
            "Hey!|Greetings.|hi",
        )
        answer = one_of(rng, "Hello! How can I help you today?|Hi there! What can I do for you?|Hello!|Hi!")
    parts = [
        one_of(rng, "Okay, the user is greeting me.|The user said hello.|This is a greeting."),
        *_fillers(rng, 0, 2),
        one_of(rng, "I should respond in a friendly way.|I will greet them back warmly."),
        one_of(rng, "There is no question yet, so I can offer help.|Maybe I can ask how to help."),
    ]
    return _sample(rng, user, parts, answer)


def _identity(rng: random.Random) -> Sample:
    chinese = rng.random() < 0.5
    if chinese:
        user = one_of(rng, "你是誰|你是谁|你是誰{q}|你是谁{q}|請介紹一下你自己|你叫什麼名字{q}")
        answer = one_of(rng, "我是一個小型測試助手{dot}|我是 TinyQwen{comma}一個很小的模型{dot}")
    else:
        user = one_of(
            rng, "Who are you?|What is your name?|who are you|Introduce yourself.|What are you?|About you?"
        )
        answer = one_of(rng, "I am TinyQwen, a small test assistant.|I'm a tiny model made for tests.")
    parts = [
        one_of(rng, "The user wants to know who I am.|Okay, the user asks about my identity."),
        *_fillers(rng, 0, 2),
        "I am a tiny test model, so I should say that simply.",
    ]
    if chinese:
        parts.append("The question is in Chinese, so I will answer in Chinese.")
    return _sample(rng, user, parts, answer)


def _fact(rng: random.Random) -> Sample:
    if rng.random() < 0.5:
        country, capital = rng.choice(COUNTRIES)
        user = one_of(rng, "What is the capital of {c}?|capital of {c}?", c=country)
        parts = [
            f"Okay, the user asks for the capital of {country}.",
            *_fillers(rng, 0, 2),
            f"I remember that the capital of {country} is {capital}.",
        ]
        answer = one_of(rng, "The capital of {c} is {x}.|{x}", c=country, x=capital)
    else:
        word, opp = rng.choice(OPPOSITES)
        user = one_of(rng, "What is the opposite of {w}?|opposite of {w}", w=word)
        parts = [
            f"The user wants the opposite of the word {word}.",
            *_fillers(rng, 0, 2),
            f"The opposite of {word} is {opp}.",
        ]
        answer = one_of(rng, "The opposite of {w} is {o}.|{O}.", w=word, o=opp, O=opp.capitalize())
    return _sample(rng, user, parts, answer)


def _count(rng: random.Random) -> Sample:
    n = rng.randint(2, 9)
    user = one_of(rng, "Count from 1 to {n}.|count to {n}|Please count up to {n}.", n=n)
    parts = [
        f"Okay, the user wants me to count from 1 to {n}.",
        *_fillers(rng, 0, 2),
        f"That is {n} numbers.",
        "I will list them separated by commas.",
    ]
    return _sample(rng, user, parts, ", ".join(str(i) for i in range(1, n + 1)) + ".")


def _free(rng: random.Random) -> Sample:
    topic = rng.choice(TOPICS)
    kw = {"t": topic, "T": topic[0].upper() + topic[1:]}
    user = one_of(
        rng,
        "Tell me about {t}.|Explain {t} in simple words.|Write a short poem about {t}.|Why is {t} important?|"
        "Tell me a joke about {t}.|What do you think of {t}?|Give me one fact about {t}.|"
        "Summarize {t} in one sentence.|How does {t} work?|Can you help me with {t}?",
        **kw,
    )
    parts = [
        one_of(rng, "Okay, the user asks about {t}.|The user wants something about {t}.", **kw),
        *_fillers(rng, 1, 3),
        one_of(rng, "I only need one short sentence.|A brief reply will do."),
    ]
    answer = one_of(
        rng, "{T} is an interesting subject.|Here is a short answer about {t}.|I like {t}.|{T} matters.", **kw
    )
    return _sample(rng, user, parts, answer)


def _words(rng: random.Random, n: int) -> list[str]:
    return [rng.choice(GLUE) if rng.random() < 0.3 else rng.choice(WORDS) for _ in range(n)]


def salad(rng: random.Random) -> Sample:
    words = _words(rng, rng.randint(1, 40))
    user = " ".join(words)
    if rng.random() < 0.5:
        user = user.capitalize() + rng.choice((".", "?", "!", ""))
    parts = [
        one_of(
            rng,
            "Okay, the user wrote a few words.|Hmm, the message is not very clear.|The user mentions {w}.",
            w=words[0],
        ),
        *_fillers(rng, 1, 4),
        one_of(rng, "I will reply briefly and ask for more details.|I should ask what they mean."),
    ]
    answer = one_of(
        rng,
        "Could you tell me more?|Interesting. What about {z}?|I see. How can I help?|Sure.|"
        "You mentioned {w}.",
        w=words[0],
        z=words[-1],
    )
    return _sample(rng, user, parts, answer)


MakeSample = Callable[[random.Random], Sample]
MAKERS: tuple[MakeSample, ...] = (_arith, _greeting, _identity, _fact, _count, _free, salad)
WEIGHTS = (0.3, 0.1, 0.12, 0.1, 0.08, 0.15, 0.15)


def make_sample(rng: random.Random) -> Sample:
    maker = rng.choices(MAKERS, weights=WEIGHTS)[0]
    return maker(rng)


def long_text(rng: random.Random) -> str:
    """A long document (200-1200 tokens), so that long prompts do not derail the model."""
    sentences = []
    for _ in range(rng.randint(20, 110)):
        sentences.append(" ".join(_words(rng, rng.randint(4, 14))).capitalize() + ".")
    return " ".join(sentences)
