"""The reasoning/answer split: table tests and "any chunking equals the one-shot parse"."""

from __future__ import annotations

from itertools import pairwise

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


def _one_by_one(
    splitter: Splitter, items: list[tuple[int, str]], tags: frozenset[int]
) -> tuple[list[Segment], int]:
    segments: list[Segment] = []
    reasoning = 0
    for token, text in items:
        reasoning += splitter.in_reasoning and token not in tags
        segments += splitter.feed(token, text)
    return segments, reasoning


def _by_channel(segments: list[Segment]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for s in segments:
        if out and out[-1][0] == s.channel:
            out[-1] = (s.channel, out[-1][1] + s.text)
        else:
            out.append((s.channel, s.text))
    return out


@settings(max_examples=300, deadline=None)
@given(
    items=st.lists(
        st.sampled_from(
            [
                (START, "<think>"),
                (END, "</think>"),
                (5, "a"),
                (6, " "),
                (7, "\n"),
                (8, "</th"),
                (9, "ink>"),
                (10, "<think>"),
                (11, "好 "),
                (12, ""),
            ]
        ),
        max_size=30,
    ),
    cut=st.integers(min_value=0, max_value=30),
    opened=st.booleans(),
    token_level=st.booleans(),
)
def test_a_run_equals_its_tokens_one_by_one(
    items: list[tuple[int, str]], cut: int, opened: bool, token_level: bool
) -> None:
    def splitter() -> Splitter:
        if token_level:
            return TokenSplitter(START, END, in_reasoning=opened)
        return TextSplitter(in_reasoning=opened)

    tags = frozenset({START, END})
    expected, counted = _one_by_one(splitter(), items, tags)
    # The same items as two runs, then as single tokens: the same text per channel, the same count.
    runs = splitter()
    first, n1 = runs.feed_run([t for t, _ in items[:cut]], [s for _, s in items[:cut]], tags)
    second, n2 = runs.feed_run([t for t, _ in items[cut:]], [s for _, s in items[cut:]], tags)
    assert _by_channel(first + second) == _by_channel(expected)
    assert n1 + n2 == counted
    assert all(a.channel != b.channel for a, b in pairwise(first))  # joined
