"""The decode pipeline, stage by stage, without an engine or a server."""

from __future__ import annotations

from collections.abc import Sequence

from thinkserve.core.events import AnswerDelta, Event, ReasoningDelta
from thinkserve.core.types import FinishReason, Usage
from thinkserve.engine.protocol import TokenEvent
from thinkserve.service.pipeline import DecodePipeline, StopStage
from thinkserve.thinking.parser import Segment, TextSplitter, TokenSplitter

START, END = 1, 2


def texts(events: Sequence[Event]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for e in events:
        assert isinstance(e, ReasoningDelta | AnswerDelta)
        out.append(("reasoning" if isinstance(e, ReasoningDelta) else "answer", e.text))
    return out


def run(pipeline: DecodePipeline, pieces: Sequence[tuple[int, str]]) -> list[Event]:
    out: list[Event] = []
    for token, text in pieces:
        out += pipeline.feed(TokenEvent(token, text))
        if pipeline.ended:
            return out
    return out + pipeline.finish(0)


def test_stop_string_split_across_tokens_ends_the_generation() -> None:
    pipeline = DecodePipeline(TextSplitter(), [StopStage(["STOP"])], prompt_tokens=3, tags=frozenset())
    events = run(pipeline, [(10, "Hello S"), (11, "TO"), (12, "P and more")])
    assert texts(events) == [("answer", "Hello ")]
    assert pipeline.ended == "stop"
    assert pipeline.usage() == Usage(prompt_tokens=3, completion_tokens=3)


def test_stop_stage_lets_reasoning_through_and_releases_held_text_at_the_end() -> None:
    pipeline = DecodePipeline(TextSplitter(), [StopStage(["STOP"])], prompt_tokens=0, tags=frozenset())
    events = run(pipeline, [(10, "<think>STOP?</think>"), (11, "Fine ST")])
    assert texts(events) == [("reasoning", "STOP?"), ("answer", "Fine "), ("answer", "ST")]
    assert pipeline.ended is None


def test_usage_counts_reasoning_without_tags_nor_injected_tokens() -> None:
    splitter = TokenSplitter(START, END)
    pipeline = DecodePipeline(splitter, [], prompt_tokens=5, tags=frozenset({START, END}))
    pipeline.feed(TokenEvent(START, "<think>"))
    pipeline.feed(TokenEvent(10, "a"))
    pipeline.feed(TokenEvent(11, "b"))
    assert pipeline.feed(TokenEvent(END, "</think>", injected=True)) == []
    events = pipeline.feed(TokenEvent(12, "c"))
    assert texts(events) == [("answer", "c")]
    assert events[0].usage == Usage(prompt_tokens=5, completion_tokens=4, reasoning_tokens=2)
    assert pipeline.finish(cached=2) == []
    assert pipeline.usage(2) == Usage(
        prompt_tokens=5, cached_tokens=2, completion_tokens=4, reasoning_tokens=2
    )


class _ToolCallStage:
    """A stand-in for the coming tool-call detector: ends the generation at a marker."""

    def __init__(self) -> None:
        self.ended: FinishReason | None = None

    def feed(self, segments: list[Segment]) -> list[Segment]:
        out: list[Segment] = []
        for segment in segments:
            if segment.channel == "answer" and "<tool_call>" in segment.text:
                before = segment.text.split("<tool_call>", 1)[0]
                out += [Segment("answer", before)] if before else []
                self.ended = "tool_calls"
                break
            out.append(segment)
        return out

    def finish(self) -> list[Segment]:
        return []


def test_a_later_stage_may_end_the_generation_with_its_own_reason() -> None:
    pipeline = DecodePipeline(
        TextSplitter(), [StopStage(["STOP"]), _ToolCallStage()], prompt_tokens=0, tags=frozenset()
    )
    events = run(pipeline, [(10, "Let me look. <tool_call>{}"), (11, "never seen")])
    assert texts(events) == [("answer", "Let me look. ")]
    assert pipeline.ended == "tool_calls"
