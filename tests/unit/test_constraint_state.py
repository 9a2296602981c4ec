"""When a request's grammar starts to apply: from the first token, or after the marker, whether
the marker is one token, text split over several, or injected by the thinking budget; and, for a
lazy constraint (``tool_choice`` auto), only from the token after its trigger past the marker."""

from __future__ import annotations

import pytest

from thinkserve.engine.llamacpp.grammar import ConstraintState
from thinkserve.engine.protocol import Constraint


def test_immediate_constraint_is_active_from_the_start() -> None:
    assert ConstraintState(Constraint("root ::= x")).active


def test_token_marker() -> None:
    state = ConstraintState(Constraint("root ::= x", after_token=7))
    for token, text in [(1, "I think"), (2, " </think"), (3, ">")]:
        state.saw(token, text)
        assert not state.active
    state.saw(7, "</think>")
    assert state.active


def test_text_marker_split_across_tokens() -> None:
    state = ConstraintState(Constraint("root ::= x", after_text="</think>"))
    for text in ["Let me see.", "\n</th", "in"]:
        state.saw(0, text)
        assert not state.active
    state.saw(0, "k>\n\n")
    assert state.active


# -- lazy constraints: a trigger after the marker ---------------------------------------------

CALL = "<tool_call>"


def test_trigger_waits_for_its_text_when_there_is_no_marker() -> None:
    state = ConstraintState(Constraint("root ::= x", trigger=CALL))
    for text in ["Let me check the weather.", "\n", "<tool", "_"]:
        state.saw(0, text)
        assert not state.active
    state.saw(0, "call>")
    assert state.active


def test_trigger_as_one_token_after_a_token_marker() -> None:
    state = ConstraintState(Constraint("root ::= x", after_token=7, trigger=CALL))
    state.saw(7, "</think>")
    assert not state.active
    state.saw(1, "\n\n")
    assert not state.active
    state.saw(2, CALL)
    assert state.active


@pytest.mark.parametrize(
    "constraint",
    [
        Constraint("root ::= x", after_token=7, trigger=CALL),
        Constraint("root ::= x", after_text="</think>", trigger=CALL),
    ],
    ids=["token-marker", "text-marker"],
)
def test_trigger_inside_the_reasoning_does_not_fire(constraint: Constraint) -> None:
    """Calls are read from the answer only: a call marker written while thinking is no call."""
    state = ConstraintState(constraint)
    for token, text in [(1, "I would write "), (2, CALL), (3, " then"), (4, " <tool_"), (5, "call>")]:
        state.saw(token, text)
        assert not state.active
    state.saw(7, "</think>")
    assert not state.active
    state.saw(8, "\n\n")
    assert not state.active
    state.saw(2, CALL)
    assert state.active


def test_trigger_half_written_before_a_text_marker_does_not_complete_after_it() -> None:
    state = ConstraintState(Constraint("root ::= x", after_text="</think>", trigger=CALL))
    state.saw(0, "<tool_")
    state.saw(0, "</think>call>")
    assert not state.active


def test_marker_and_trigger_in_one_text() -> None:
    state = ConstraintState(Constraint("root ::= x", after_text="</think>", trigger=CALL))
    state.saw(0, f"{CALL} in thought</think>\n\n{CALL}\n{{")
    assert state.active
    assert state._pending == "\n{"


def test_text_after_the_trigger_is_kept_for_the_grammar() -> None:
    state = ConstraintState(Constraint("root ::= x", trigger=CALL))
    state.saw(0, "Checking.<tool_")
    state.saw(0, 'call>\n{"na')
    assert state.active and state._pending == '\n{"na'


def test_a_lazy_constraint_crosses_the_engine_wire_whole() -> None:
    import pickle

    from thinkserve.engine.supervised.wire import frame

    constraint = Constraint('root ::= "x"', after_token=7, trigger=CALL)
    assert pickle.loads(frame(constraint)[4:]) == constraint


# -- lazy constraints: a bare call at the start of the answer ----------------------------------

BARE = r'\s*(\{\s*"name"\s*:\s*"(?:f|get_weather)")'


def test_start_pattern_fires_at_the_start_of_the_answer_and_feeds_its_group() -> None:
    state = ConstraintState(Constraint("root ::= x", after_token=7, trigger=CALL, start_pattern=BARE))
    state.saw(1, '{"name": "f"')  # reasoning: nothing
    state.saw(7, "</think>")
    for text in ["\n\n", '{"', "name", '":', ' "get_', "weather"]:
        state.saw(0, text)
        assert not state.active
    state.saw(0, '",')
    assert state.active
    assert state._pending == '{"name": "get_weather",'


@pytest.mark.parametrize(
    "answer",
    [
        'Sure: {"name": "f", "arguments": {}}',  # text first
        '{"name": "other", "arguments": {}}',  # not an offered tool
        '{"city": "Hangzhou", "name": "f"}',  # JSON of its own
    ],
)
def test_start_pattern_leaves_other_answers_free(answer: str) -> None:
    state = ConstraintState(Constraint("root ::= x", start_pattern=BARE))
    for i in range(0, len(answer), 3):
        state.saw(0, answer[i : i + 3])
    assert not state.active


def test_start_pattern_gives_up_past_its_window_but_the_trigger_still_fires() -> None:
    from thinkserve.engine.protocol import START_WINDOW

    state = ConstraintState(Constraint("root ::= x", trigger=CALL, start_pattern=BARE))
    state.saw(0, " " * (START_WINDOW + 1))
    state.saw(0, '{"name": "f"')
    assert not state.active and state._pattern is None
    state.saw(0, CALL)
    assert state.active and state._pending == ""
