"""The reasoning/answer split: table tests and "any chunking equals the one-shot parse"."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from thinkserve.thinking.parser import Segment, Splitter, TextSplitter, TokenSplitter

START, END = 1001, 1002


def run_text(chunks: list[str], *, in_reasoning: bool = False) -> tuple[str, str]:
    return _join(TextSplitter(in_reasoning=in_reasoning), [(0, c) for c in chunks])


def _join(splitter: Splitter, items: list[tuple[int, str]]) -> tuple[str, str]:
    segments: list[Segment] = []
    for token, text in items:
        segments += splitter.feed(token, text)
    segments += splitter.finish()
    reasoning = "".join(s.text for s in segments if s.channel == "reasoning")
    answer = "".join(s.text for s in segments if s.channel == "answer")
    # Never interleaved: once the answer starts, no reasoning follows.
    channels = [s.channel for s in segments]
    if "answer" in channels:
        assert "reasoning" not in channels[channels.index("answer") :]
    return reasoning, answer


def test_tags_and_surrounding_newlines_are_dropped() -> None:
    assert run_text(["<think>\nThe user greets me.\n</think>\n\nHello!"]) == ("The user greets me.", "Hello!")


def test_tag_split_across_chunks() -> None:
    assert run_text(["<th", "ink>\nso 4.</th", "ink>\n\nIt is 4"]) == ("so 4.", "It is 4")


def test_unterminated_thinking_is_all_reasoning() -> None:
    assert run_text(["<think>\nstill thinking and cut </thi"]) == ("still thinking and cut </thi", "")


def test_prompt_opened_block_has_no_opening_tag() -> None:
    assert run_text(["Let me see.\n</think>\n\nDone."], in_reasoning=True) == ("Let me see.", "Done.")


def test_no_thinking_is_all_answer_and_later_tags_are_text() -> None:
    assert run_text(["Hi ", "<think>x</think>"]) == ("", "Hi <think>x</think>")


def test_a_repeated_closing_tag_is_not_answer_text() -> None:
    assert run_text(["<think>\nx\n</think>\n\n", "</th", "ink>", "Answer"]) == ("x", "Answer")
    assert run_text(["<think>\nx</think>\n</think>"]) == ("x", "")


def test_token_splitter_uses_ids_not_text() -> None:
    items = [
        (START, "<think>"),
        (5, "\n"),
        (6, "I write </think> as text"),
        (7, "\n"),
        (END, "</think>"),
        (8, "\n\n"),
        (9, "Answer"),
    ]
    assert _join(TokenSplitter(START, END), items) == ("I write </think> as text", "Answer")


TEXTS = st.sampled_from(
    [
        "<think>\nabc </think>\n\nxyz",
        "<think>\n好的,用戶問“你是誰”。\n</think>\n\n我是通義千問。",
        "plain answer with < and </ and </thin",
        "  <think>a<b</think>c",
        "<think>\nunfinished </th",
        "reasoning only, opened by the template\n</think>\n\nanswer",
    ]
)


@settings(max_examples=300, deadline=None)
@given(text=TEXTS, cuts=st.lists(st.integers(min_value=0, max_value=80), max_size=12), opened=st.booleans())
def test_any_chunking_equals_one_shot(text: str, cuts: list[int], opened: bool) -> None:
    points = sorted({c % (len(text) + 1) for c in cuts})
    chunks = [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]
    assert run_text(chunks, in_reasoning=opened) == run_text([text], in_reasoning=opened)


@settings(max_examples=200, deadline=None)
@given(
    pieces=st.lists(st.sampled_from(["a", " ", "\n", "好", "</", "think>", "x y"]), max_size=20),
    answer=st.lists(st.sampled_from(["b", " ", "\n", "c"]), max_size=10),
    cut=st.booleans(),
)
def test_token_level_any_chunking(pieces: list[str], answer: list[str], cut: bool) -> None:
    items = [(START, "<think>")] + [(10 + i, p) for i, p in enumerate(pieces)]
    if not cut:
        items += [(END, "</think>")] + [(100 + i, p) for i, p in enumerate(answer)]
    reasoning, out = _join(TokenSplitter(START, END), items)
    assert reasoning == "".join(pieces).strip()
    assert out == ("" if cut else "".join(answer).lstrip())
