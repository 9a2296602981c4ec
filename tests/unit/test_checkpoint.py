"""The checkpoint every engine shares: pause at N sampled tokens unless a marker came first."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from thinkserve.engine.checkpoint import CheckpointState, marker_seen
from thinkserve.engine.protocol import Checkpoint


def test_without_a_checkpoint_nothing_ever_pauses() -> None:
    state = CheckpointState(None)
    assert not state.armed
    assert not state.due(10**6) and not state.pauses_at_end()


def test_pauses_at_the_limit_once_then_runs_on() -> None:
    state = CheckpointState(Checkpoint(limit=2))
    assert not state.due(0)
    assert not state.after(5, "a", 1)
    assert state.after(6, "b", 2)
    state.pause()
    assert state.paused and not state.armed
    state.resume()
    assert not state.paused and not state.armed and not state.due(3)


def test_a_zero_limit_is_due_before_the_first_token() -> None:
    assert CheckpointState(Checkpoint(limit=0)).due(0)


def test_the_marker_token_or_text_disarms_it() -> None:
    by_token = CheckpointState(Checkpoint(limit=2, until_token=42))
    assert not by_token.after(42, "", 2)  # the marker wins over the limit reached by the same token
    assert not by_token.armed and not by_token.due(5)

    by_text = CheckpointState(Checkpoint(limit=5, until_text="</think>"))
    assert not by_text.saw_marker(1, "so </th")
    assert by_text.armed
    assert by_text.saw_marker(2, "ink>")
    assert not by_text.armed


def test_an_end_token_pauses_only_while_armed_with_on_end() -> None:
    assert CheckpointState(Checkpoint(limit=3, on_end=True)).pauses_at_end()
    assert not CheckpointState(Checkpoint(limit=3)).pauses_at_end()
    spent = CheckpointState(Checkpoint(limit=3, on_end=True))
    spent.pause()
    assert not spent.pauses_at_end()


@given(st.text(alphabet="ab</>k", max_size=30), st.integers(1, 5))
def test_marker_is_found_across_token_boundaries(text: str, step: int) -> None:
    state = CheckpointState(None)
    pieces = [text[i : i + step] for i in range(0, len(text), step)]
    assert any(marker_seen(state, "</k>", piece) for piece in pieces) == ("</k>" in text)
