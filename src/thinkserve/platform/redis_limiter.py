"""Rate limits shared by several server processes through Redis (imports platform.limits).

Each window is a sorted set of ``<id>:<n>:<amount>`` members scored by the time they were counted,
plus a counter of their total. One Lua script prunes, checks and counts all windows of a request
atomically, with Redis's own clock, so that every process sees the same windows::

    thinkserve:rl:key:key_1a2b:req:60        ZSET  "9f3c…:1:1" -> 1732560000123
    thinkserve:rl:key:key_1a2b:req:60:sum    STRING "17"
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from thinkserve.platform.limits import Check, RateLimiterUnavailable, rejection

DEFAULT_TIMEOUT_S = 0.5

# KEYS: zset_1, sum_1, zset_2, sum_2, ...; ARGV: id, then per window span_ms, limit (-1: no check),
# amount, oversize (1: an amount over the limit passes when the window is empty; see Check.over).
# Returns {0, 0} when counted, {i, wait_ms} when window i refused.
_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = #KEYS / 2
for i = 1, n do
  local z, s = KEYS[2 * i - 1], KEYS[2 * i]
  local span = tonumber(ARGV[4 * i - 2])
  local limit = tonumber(ARGV[4 * i - 1])
  local amount = tonumber(ARGV[4 * i])
  local oversize = tonumber(ARGV[4 * i + 1])
  local old = redis.call('ZRANGEBYSCORE', z, '-inf', now - span)
  if #old > 0 then
    local freed = 0
    for _, m in ipairs(old) do freed = freed + tonumber(string.match(m, ':(%d+)$')) end
    redis.call('ZREMRANGEBYSCORE', z, '-inf', now - span)
    redis.call('DECRBY', s, freed)
  end
  if limit >= 0 then
    local total = tonumber(redis.call('GET', s) or '0')
    local counted = amount
    if oversize == 1 and limit > 0 and amount > limit then counted = limit end
    if total + counted > limit then
      local need = total + counted - limit
      local entries = redis.call('ZRANGE', z, 0, -1, 'WITHSCORES')
      local wait = span
      local freed = 0
      for j = 1, #entries, 2 do
        freed = freed + tonumber(string.match(entries[j], ':(%d+)$'))
        if freed >= need then
          wait = tonumber(entries[j + 1]) + span - now
          break
        end
      end
      return {i, wait}
    end
  end
end
for i = 1, n do
  local z, s = KEYS[2 * i - 1], KEYS[2 * i]
  local span = tonumber(ARGV[4 * i - 2])
  local amount = tonumber(ARGV[4 * i])
  if amount > 0 then
    redis.call('ZADD', z, now, ARGV[1] .. ':' .. i .. ':' .. amount)
    redis.call('INCRBY', s, amount)
    redis.call('PEXPIRE', z, span + 1000)
    redis.call('PEXPIRE', s, span + 1000)
  end
end
return {0, 0}
"""


class RedisLimiter:
    """The same windows as ``LocalLimiter``, held in Redis (``redis://host:6379/0``)."""

    def __init__(
        self, url: str, *, prefix: str = "thinkserve:rl:", timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> None:
        # Small timeouts and one immediate retry (a pooled connection may have died with a Redis
        # restart): a partition costs a request at most about 2 x timeout_s, never a hang.
        self._redis: Redis = Redis.from_url(
            url,
            socket_connect_timeout=timeout_s,
            socket_timeout=timeout_s,
            retry=Retry(NoBackoff(), 1),
        )
        self._prefix = prefix
        self._timeout_s = timeout_s
        self._script: Any = self._redis.register_script(_SCRIPT)

    async def ping(self) -> None:
        await self._redis.ping()

    async def _run(self, checks: Sequence[Check]) -> tuple[int, int]:
        """Run the script; any failure to get its answer in time raises ``RateLimiterUnavailable``."""
        try:
            async with asyncio.timeout(4 * self._timeout_s):
                return await self._call(checks)
        except (RedisError, OSError, TimeoutError) as exc:
            raise RateLimiterUnavailable() from exc

    async def _call(self, checks: Sequence[Check]) -> tuple[int, int]:
        keys: list[str] = []
        args: list[str | int] = [uuid.uuid4().hex]
        for check in checks:
            name = self._prefix + check.window
            keys += [name, name + ":sum"]
            limit = -1 if check.limit is None else check.limit
            args += [int(check.span * 1000), limit, check.amount, int(check.oversize)]
        index, wait_ms = await self._script(keys=keys, args=args)
        return int(index), int(wait_ms)

    async def acquire(self, checks: Sequence[Check]) -> None:
        if not checks:
            return
        index, wait_ms = await self._run(checks)
        if index:
            raise rejection(checks[index - 1], wait_ms / 1000)

    async def add(self, charges: Sequence[Check]) -> None:
        if charges:
            await self._run(charges)

    async def aclose(self) -> None:
        await self._redis.aclose()
