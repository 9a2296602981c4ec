"""Random ids for requests and usage records (imports nothing of thinkserve).

A request makes four of them. ``uuid.uuid4()`` reads the operating system's randomness for each
(a ``getrandom`` call, which this project's test VMs make slow) and builds a ``UUID`` object; these
take Python's own generator instead, about 0.3-0.6 µs each. They need to be unique, not secret:
the generator is seeded from the operating system at start, and again in a forked child
(``random`` re-seeds itself after ``fork``), so that two processes never draw the same ids; a usage
record's id makes its journal replay idempotent.
"""

from __future__ import annotations

import random

_VERSION_4 = 0x4 << 76
_VERSION_MASK = 0xF << 76
_VARIANT_RFC = 0x2 << 62
_VARIANT_MASK = 0x3 << 62


def hex_id() -> str:
    """32 random hex digits: ``"9f3c0a5e1d2b4c6f8a7e9d0c1b2a3f4e"``."""
    return f"{random.getrandbits(128):032x}"


def uuid_text() -> str:
    """A random (version 4) UUID in its usual text form: ``"3f2a9c1e-5b7d-4e0f-9a8b-1c2d3e4f5a6b"``."""
    n = (random.getrandbits(128) & ~_VERSION_MASK & ~_VARIANT_MASK) | _VERSION_4 | _VARIANT_RFC
    h = f"{n:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
