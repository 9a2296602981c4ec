"""Does the gateway's RSS grow with the usage table, and level off? (The soak's gateway slope.)

Writes usage records into a fresh SQLite store through ``platform.store.Store``, 250 at a time, and
prints the RSS of this process next to the size of the database every 1,000 rows::

    python bench/sqlite_cache.py /tmp/usage.db 160
"""

from __future__ import annotations

import asyncio
import gc
import sys
import time
import uuid
from pathlib import Path

from thinkserve.platform.metering import UsageRecord
from thinkserve.platform.store import Store


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def main(path: str, batches: int) -> None:
    store = await Store.open(f"sqlite+aiosqlite:///{path}")
    base = 0
    for b in range(batches):
        records = [
            UsageRecord(
                uuid.uuid4().hex,
                f"key_{i % 4}",
                None,
                "qwen-plus",
                True,
                "ok",
                30,
                0,
                24,
                10,
                12.0,
                200.0,
                time.time(),
            )
            for i in range(250)
        ]
        await store.write(records, {}, check_stored=False)
        if b % 4 == 3:
            gc.collect()
            rss = rss_kb()
            base = base or rss
            size = sum(f.stat().st_size for f in Path(path).parent.glob(Path(path).name + "*")) // 1024
            sys.stdout.write(f"rows {(b + 1) * 250:6d}  db+wal {size:6d} KB  rss {rss} KB  (+{rss - base})\n")
    await store.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
