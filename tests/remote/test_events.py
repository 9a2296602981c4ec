"""Server-sent events to chunks, one read at a time (``engine.remote.events``)."""

from __future__ import annotations

import orjson
import pytest

from thinkserve.engine.remote.events import MAX_LINE, EventReader
from thinkserve.engine.remote.llamacpp_wire import LlamaCppWire
from thinkserve.engine.remote.vllm_wire import VllmWire
from thinkserve.engine.remote.wire import Chunk, WireError


def event(token_ids: list[int], finish: str | None = None) -> bytes:
    choice = {"index": 0, "text": "x", "token_ids": token_ids, "finish_reason": finish}
    return b"data: " + orjson.dumps({"choices": [choice]}) + b"\n\n"


USAGE = b'data: {"choices": [], "usage": {"prompt_tokens_details": {"cached_tokens": 2}}}\n\n'


def test_one_read_of_many_events_is_one_chunk() -> None:
    reader = EventReader(VllmWire())
    data = event([1]) + b": ping\n\n" + event([2, 3]) + event([4], "stop") + USAGE + b"data: [DONE]\n\n"
    assert reader.feed(data) == Chunk([1, 2, 3, 4], "stop", 2)
    assert reader.done
    assert reader.feed(event([5])) == Chunk()  # nothing counts after the done line
    assert reader.end() == Chunk()


def test_llamacpp_events_of_one_read_keep_their_counts_as_parts() -> None:
    def llama(data: dict[str, object]) -> bytes:
        return b"data: " + orjson.dumps(data) + b"\n\n"

    # Token 2 ends inside a character: no event of its own; the next one carries its bytes.
    one = {"content": "a", "tokens": [1], "stop": False, "tokens_predicted": 1}
    three = {"content": "\u00e9", "tokens": [3], "stop": False, "tokens_predicted": 3}
    end = {"content": "", "tokens": [], "stop": True, "stop_type": "eos", "timings": {"cache_n": 0}}
    chunk = EventReader(LlamaCppWire()).feed(llama(one) + llama(three) + llama(end))
    parts = (Chunk([1], generated=1, text="a"), Chunk([3], generated=3, text="\u00e9"), Chunk([], "stop", 0))
    assert chunk == Chunk([1, 3], "stop", 0, generated=3, parts=parts)


def test_an_event_split_across_reads_waits_for_its_end() -> None:
    reader = EventReader(VllmWire())
    data = event([1]) + event([2], "length")
    cut = len(event([1])) + 10
    assert reader.feed(data[:cut]) == Chunk([1])
    assert reader.feed(data[cut : cut + 5]) == Chunk()
    assert reader.feed(data[cut + 5 :]) == Chunk([2], "length")


def test_a_single_event_per_read_and_crlf_lines() -> None:
    reader = EventReader(LlamaCppWire())
    assert reader.feed(b'data: {"tokens": [7], "stop": false}\r\n\r\n') == Chunk([7])
    last = b'data: {"tokens": [], "stop": true, "stop_type": "eos", "timings": {"cache_n": 4}}'
    assert reader.feed(last) == Chunk()  # no newline yet
    assert reader.end() == Chunk([], "stop", 4)  # the body ended: the last line counts


def test_a_bad_event_raises_after_the_events_before_it() -> None:
    reader = EventReader(VllmWire())
    data = event([1]) + event([2]) + b"data: {not json\n\n" + event([3])
    assert reader.feed(data) == Chunk([1, 2])
    with pytest.raises(orjson.JSONDecodeError):
        reader.raise_pending()
    reader = EventReader(VllmWire())
    error = b'data: {"error": {"message": "boom"}}\n\n'
    assert reader.feed(event([1]) + error) == Chunk([1])
    with pytest.raises(WireError, match="boom"):
        reader.feed(event([2]))
    with pytest.raises(WireError, match="boom"):
        EventReader(VllmWire()).feed(error + event([1]))  # nothing before it: raised at once


def test_payloads_that_only_parse_joined_are_read_one_by_one() -> None:
    reader = EventReader(VllmWire())
    with pytest.raises(orjson.JSONDecodeError):
        reader.feed(b'data: {"choices": []}, {"choices": []}\n\ndata: 1\n\n')


def test_a_line_without_end_past_the_limit_is_refused() -> None:
    reader = EventReader(VllmWire())
    reader.feed(b"data: " + b"1" * (MAX_LINE - 100))
    with pytest.raises(WireError, match="too long"):
        reader.feed(b"2" * 200)
