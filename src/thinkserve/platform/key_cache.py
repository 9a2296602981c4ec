"""Who is calling: bootstrap keys and stored keys, looked up by digest and cached (imports core,
platform).

* Bootstrap keys (``THINKSERVE_API_KEYS`` / ``[server] api_keys``) are admin keys with no limits
  of their own, bound to no workspace: they are how an operator reaches the admin API before any
  key is created.
* A key bound to a workspace works without ``X-DashScope-WorkSpace`` (its workspace is implied) and
  answers 403 ``Workspace.AccessDenied`` when the header names another one; its usage is that
  workspace's, and its admin rights (if any) reach only that workspace.
* An unbound key may send any workspace header, but only keys with global admin rights (operator
  keys, unbound admin keys: they could mint a key for any workspace anyway) have their usage
  recorded under the workspace they name. An unbound normal key's usage is recorded under no
  workspace: a key must not charge its use to a workspace it has no rights over.
* Keys are looked up by digest and cached for ``ttl_s`` (5 s): a key revoked by another process
  (``thinkserve keys revoke``) stops working within that time; one revoked here, at once.
* While the store is unreachable, a key looked up within ``stale_s`` (1 h) keeps its last answer,
  asked again once per ``ttl_s``; any other key gets 503 ``StoreUnavailable`` at once.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Iterable

from thinkserve.core.errors import InvalidApiKey, WorkspaceDenied
from thinkserve.platform import keys as keymod
from thinkserve.platform.keys import ApiKey, parse_bearer
from thinkserve.platform.port import Principal
from thinkserve.platform.store import Store, StoreUnavailable

log = logging.getLogger(__name__)


class KeyCache:
    def __init__(
        self,
        store: Store,
        bootstrap: Iterable[str],
        *,
        ttl_s: float = 5.0,
        size: int = 10_000,
        stale_s: float = 3600.0,
    ) -> None:
        self._store = store
        self._bootstrap = [keymod.digest(k) for k in bootstrap]
        self._ttl = ttl_s
        self._stale = stale_s
        self._size = size
        self._by_digest: OrderedDict[str, tuple[ApiKey | None, float, float]] = OrderedDict()
        """Digest -> (key or None, monotonic expiry, monotonic time the store last answered)."""
        self._by_id: dict[str, ApiKey] = {}

    async def authenticate(self, authorization: str | None, workspace: str | None) -> Principal:
        token = parse_bearer(authorization)
        if token is None:
            raise InvalidApiKey("You didn't provide an API key. ")
        digest = keymod.digest(token)
        # compare_digest against every bootstrap key: the time taken does not tell which was close.
        matched = [i for i, d in enumerate(self._bootstrap) if keymod.same_digest(digest, d)]
        if matched:
            return Principal(
                key_id=f"bootstrap-{matched[0]}", name="bootstrap", workspace=workspace, admin=True
            )
        key = await self._key(digest)
        if key is None or not keymod.same_digest(key.digest, digest) or key.revoked_at is not None:
            raise InvalidApiKey()
        if key.workspace is not None:
            if workspace is not None and workspace != key.workspace:
                raise WorkspaceDenied(f"The API key has no access to workspace {workspace!r}.")
            workspace = key.workspace
        elif not key.admin:
            workspace = None  # accepted (SDKs send it), never attributed: see the module's doc
        return Principal(
            key_id=key.id, name=key.name, workspace=workspace, admin=key.admin, bound=key.workspace
        )

    def by_id(self, key_id: str) -> ApiKey | None:
        """A stored key this process has authenticated (None for bootstrap keys)."""
        return self._by_id.get(key_id)

    def forget(self) -> None:
        """Drop every cached lookup: the next request of a revoked key finds it revoked."""
        self._by_digest.clear()

    async def _key(self, digest: str) -> ApiKey | None:
        now = time.monotonic()
        hit = self._by_digest.get(digest)
        if hit is not None and hit[1] > now:
            self._by_digest.move_to_end(digest)
            return hit[0]
        try:
            key = await self._store.key_by_digest(digest)
        except Exception as error:
            if hit is None or now - hit[2] > self._stale:
                raise StoreUnavailable() from error
            # Keys seen recently keep working through a database outage; ask again after a ttl.
            log.warning("key store unreachable (%s); using the cached key", type(error).__name__)
            self._by_digest[digest] = (hit[0], now + self._ttl, hit[2])
            return hit[0]
        self._by_digest[digest] = (key, now + self._ttl, now)
        self._by_digest.move_to_end(digest)
        while len(self._by_digest) > self._size:
            self._by_digest.popitem(last=False)
        if key is not None:
            self._by_id[key.id] = key
        return key
