"""Redis state: buckets, risk records and overrides shared by every gateway replica.

* Buckets are hashes ``<prefix>b:<key>`` (``t`` = units, ``ts`` = server time of that reading),
  taken atomically by one Lua script (:data:`TAKE_LUA`, called with ``EVALSHA``: one round trip);
  the script reads the Redis server's clock, so replicas with skewed clocks agree.  A bucket key
  expires once it would be full again.
* Records are JSON strings ``<prefix><table>:<key>``; risk records carry a TTL, overrides do not.
  :data:`VIEW_LUA` fetches an account's override, online and scan records and its cluster's record
  in one round trip.  (It reads the cluster key it computes, so with Redis Cluster all keys must
  share a hash slot: give the prefix a hash tag, e.g. ``{dg}:``.)

The hot path (:meth:`RedisBuckets.atake_many`, :meth:`RedisRiskTable.aaccount_view`) uses
``redis.asyncio`` on the running event loop; admin calls, the online scorer's writes and scan
loading use a synchronous client (they run in threads or off the request path).

Example:
    >>> state = RedisState("redis://127.0.0.1:6379/0", prefix="dg:")      # doctest: +SKIP
    >>> state.buckets.take("a:acct-1", 100, rate=50.0, burst=1000.0)     # doctest: +SKIP
    (True, 0.0)
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
import redis
import redis.asyncio as aioredis

from distillguard.errors import ConfigError
from distillguard.gateway.buckets import BucketSpec
from distillguard.gateway.state.base import CLUSTER, ONLINE, OVERRIDE, SCAN, AccountView, Record, RiskTable, State, TokenBuckets

#: KEYS: bucket keys.  ARGV: cost, now (< 0: the server's clock), then rate, burst per key.
#: Mirrors distillguard.gateway.buckets.take_all; returns {allowed, retry_after (string: Lua numbers truncate)}.
TAKE_LUA = """
local cost = tonumber(ARGV[1])
local now = tonumber(ARGV[2])
if now < 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local held, need, wait = {}, {}, 0
for i = 1, #KEYS do
  local rate, burst = tonumber(ARGV[1 + 2 * i]), tonumber(ARGV[2 + 2 * i])
  local v = redis.call('HMGET', KEYS[i], 't', 'ts')
  local tokens = burst
  if v[1] then tokens = math.min(burst, tonumber(v[1]) + math.max(0, now - tonumber(v[2])) * rate) end
  held[i], need[i] = tokens, math.min(cost, burst)
  if tokens < need[i] then wait = math.max(wait, (need[i] - tokens) / rate) end
end
if wait > 0 then return {0, tostring(wait)} end
for i = 1, #KEYS do
  local rate, burst = tonumber(ARGV[1 + 2 * i]), tonumber(ARGV[2 + 2 * i])
  redis.call('HSET', KEYS[i], 't', tostring(held[i] - need[i]), 'ts', tostring(now))
  redis.call('PEXPIRE', KEYS[i], math.ceil((burst / rate + 1) * 1000))
end
return {1, '0'}
"""

#: KEYS: level of one bucket.  ARGV: rate, burst.  Read-only.
LEVEL_LUA = """
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local v = redis.call('HMGET', KEYS[1], 't', 'ts')
if not v[1] then return tostring(burst) end
return tostring(math.min(burst, tonumber(v[1]) + math.max(0, now - tonumber(v[2])) * rate))
"""

#: KEYS: override, online, scan record keys.  ARGV: the cluster table's key prefix.
VIEW_LUA = """
local o = redis.call('GET', KEYS[1])
local a = redis.call('GET', KEYS[2])
local s = redis.call('GET', KEYS[3])
local cid = false
for _, rec in ipairs({s, a}) do
  if (not cid) and rec then
    local ok, d = pcall(cjson.decode, rec)
    if ok and type(d) == 'table' and type(d['cluster_id']) == 'string' then cid = d['cluster_id'] end
  end
end
local c = false
if cid then c = redis.call('GET', ARGV[1] .. cid) end
return {o, a, s, c}
"""


def _loads(raw: bytes | None) -> Record | None:
    return orjson.loads(raw) if raw else None


_LUA = {"take": TAKE_LUA, "level": LEVEL_LUA, "view": VIEW_LUA}


class _Clients:
    """A synchronous client, and an asyncio client for the current event loop (asyncio clients are bound to one loop)."""

    def __init__(self, url: str):
        try:
            self.sync = redis.Redis.from_url(url)
        except ValueError as exc:
            raise ConfigError(f"redis_url {url!r}: {exc}") from exc
        self.url = url
        self.scripts = {name: self.sync.register_script(lua) for name, lua in _LUA.items()}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._aclient: aioredis.Redis | None = None
        self._ascripts: dict[str, Any] = {}

    def ascript(self, name: str) -> Any:
        """The named script on the running loop's client (EVALSHA, loading the script once if needed)."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._loop, self._aclient = loop, aioredis.Redis.from_url(self.url)
            self._ascripts = {n: self._aclient.register_script(lua) for n, lua in _LUA.items()}
        return self._ascripts[name]

    def close(self) -> None:
        self.sync.close()
        loop, client = self._loop, self._aclient
        self._loop, self._aclient, self._ascripts = None, None, {}
        if client is not None and loop is not None and not loop.is_closed():
            if loop.is_running():
                loop.create_task(client.aclose())
            else:
                loop.run_until_complete(client.aclose())


def _take_args(specs: Sequence[BucketSpec], cost: float, now: float | None) -> list[float]:
    args: list[float] = [float(cost), -1.0 if now is None else float(now)]
    for spec in specs:
        args += [float(spec.rate), float(spec.burst)]
    return args


class RedisBuckets(TokenBuckets):
    def __init__(self, clients: _Clients, prefix: str):
        self._c, self._prefix = clients, prefix + "b:"

    def take_many(self, specs: Sequence[BucketSpec], cost: float, now: float | None = None) -> tuple[bool, float]:
        ok, wait = self._c.scripts["take"](keys=[self._prefix + s.key for s in specs], args=_take_args(specs, cost, now))
        return bool(ok), float(wait)

    async def atake_many(self, specs: Sequence[BucketSpec], cost: float, now: float | None = None) -> tuple[bool, float]:
        ok, wait = await self._c.ascript("take")(keys=[self._prefix + s.key for s in specs], args=_take_args(specs, cost, now))
        return bool(ok), float(wait)

    def level(self, spec: BucketSpec, now: float | None = None) -> float:
        return float(self._c.scripts["level"](keys=[self._prefix + spec.key], args=[spec.rate, spec.burst]))

    def reset(self, key: str) -> None:
        self._c.sync.delete(self._prefix + key)


class RedisRiskTable(RiskTable):
    def __init__(self, clients: _Clients, prefix: str):
        self._c, self._prefix = clients, prefix

    def _key(self, table: str, key: str) -> str:
        return f"{self._prefix}{table}:{key}"

    def get(self, table: str, key: str) -> Record | None:
        return _loads(self._c.sync.get(self._key(table, key)))

    def put_many(self, table: str, records: Mapping[str, Record], ttl_s: float | None = None) -> None:
        pipe = self._c.sync.pipeline(transaction=False)
        px = int(ttl_s * 1000) if ttl_s else None
        for n, (key, record) in enumerate(records.items(), 1):
            pipe.set(self._key(table, key), orjson.dumps(record, option=orjson.OPT_SERIALIZE_NUMPY), px=px)
            if n % 1000 == 0:
                pipe.execute()
        pipe.execute()

    def delete(self, table: str, key: str) -> bool:
        return bool(self._c.sync.delete(self._key(table, key)))

    def keys(self, table: str, limit: int = 1000) -> list[str]:
        head = f"{self._prefix}{table}:"
        out = []
        for raw in self._c.sync.scan_iter(match=head + "*", count=500):
            out.append(raw.decode()[len(head):])
            if len(out) >= limit:
                break
        return out

    def _view_keys(self, account_id: str) -> list[str]:
        return [self._key(OVERRIDE, account_id), self._key(ONLINE, account_id), self._key(SCAN, account_id)]

    def account_view(self, account_id: str) -> AccountView:
        raw = self._c.scripts["view"](keys=self._view_keys(account_id), args=[f"{self._prefix}{CLUSTER}:"])
        return AccountView(*(_loads(r) for r in raw))

    async def aaccount_view(self, account_id: str) -> AccountView:
        raw = await self._c.ascript("view")(keys=self._view_keys(account_id), args=[f"{self._prefix}{CLUSTER}:"])
        return AccountView(*(_loads(r) for r in raw))


class RedisState(State):
    """Buckets and records in one Redis database, shared by every replica using the same ``prefix``."""

    shared = True

    def __init__(self, url: str, *, prefix: str = "dg:"):
        self._clients = _Clients(url)
        try:
            self._clients.sync.ping()
        except redis.RedisError as exc:
            raise ConfigError(f"redis_url {url!r}: cannot reach Redis: {exc}") from exc
        super().__init__(RedisBuckets(self._clients, prefix), RedisRiskTable(self._clients, prefix))
        self.url, self.prefix = url, prefix

    def close(self) -> None:
        self._clients.close()
