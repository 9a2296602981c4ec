"""When a request's grammar starts to apply: from the first token, or after the marker, whether
the marker is one token, text split over several, or injected by the thinking budget."""

from __future__ import annotations

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
