"""Request and usage-record ids: their formats, and no repeats across a fork (journal replay is
idempotent by record id, so two processes must never draw the same one)."""

from __future__ import annotations

import os
import uuid

from thinkserve.core.ids import hex_id, uuid_text


def test_uuid_text_is_a_version_4_uuid() -> None:
    for _ in range(2000):
        text = uuid_text()
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_hex_ids_are_32_hex_digits_and_do_not_repeat() -> None:
    ids = [hex_id() for _ in range(20000)]
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    assert len(set(ids)) == len(ids)


def test_a_forked_child_draws_other_ids_than_its_parent() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, to the parent
        os.write(write, ",".join(hex_id() for _ in range(8)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as pipe:
        child = set(pipe.read().split(","))
    parent = {hex_id() for _ in range(8)}
    assert len(child) == 8 and not child & parent
