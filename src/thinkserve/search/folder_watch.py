"""Keeps a ``FolderIndex`` current: ``sync`` once at start, then again whenever files under its
folder change (imports search).

Changes are watched with ``watchfiles`` (inotify, FSEvents, ReadDirectoryChangesW); where the
watch cannot run (a full inotify table, a file system without events) it polls every
``POLL_S`` seconds instead. Bursts of changes (an editor's save, a ``git checkout``) are debounced
into one ``sync``, which re-reads only the files whose size or modification time changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from watchfiles import awatch

from thinkserve.search.folder_index import FolderIndex

log = logging.getLogger(__name__)

POLL_S = 2.0
DEBOUNCE_MS = 200


class FolderWatch:
    def __init__(self, index: FolderIndex) -> None:
        self._index = index
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Index the folder (in a worker thread), then watch it."""
        await asyncio.to_thread(self._index.sync)
        log.info("search: %d document(s) indexed under %s", self._index.documents, self._index.root)
        self._task = asyncio.create_task(self._run(), name=f"watch {self._index.root}")

    async def _run(self) -> None:
        try:
            async for _ in awatch(self._index.root, stop_event=self._stop, debounce=DEBOUNCE_MS):
                await self._sync()
        except Exception as exc:  # whatever the OS watch raised: poll instead
            log.warning("search: cannot watch %s (%s); polling every %.0f s", self._index.root, exc, POLL_S)
            while not self._stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), POLL_S)
                if not self._stop.is_set():
                    await self._sync()

    async def _sync(self) -> None:
        try:
            await asyncio.to_thread(self._index.sync)
        except Exception:  # the index stays as it was; the next change tries again
            log.exception("search: re-indexing %s failed", self._index.root)

    async def aclose(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
