"""The upstream client: one pooled aiohttp session to the OpenAI-compatible upstream.

aiohttp rather than httpx: 2,000 sequential requests to the fake upstream on
this machine cost ~145 µs of CPU each through a pooled aiohttp session and
~630-710 µs through httpx.AsyncClient, and this client is most of what the
proxy adds per request.

The client's own ``Authorization`` header is never forwarded; the upstream key
(server-side configuration) is sent instead.  Failures are mapped to one
:class:`UpstreamError` with a ``kind`` the proxy turns into a status:
``timeout`` → 504, ``unreachable`` → 502, ``dropped`` (connection lost while
reading the body) → 502, or an SSE error event mid-stream.

Example:
    >>> up = Upstream("http://127.0.0.1:9/v1", api_key=None)
    >>> up.url("/v1/chat/completions")
    'http://127.0.0.1:9/v1/chat/completions'
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp

#: What the proxy forwards upstream besides the body: nothing that identifies the client.
_JSON = "application/json"


class UpstreamError(Exception):
    """The upstream could not be reached, was too slow, or dropped the connection."""

    def __init__(self, kind: str, detail: str):
        super().__init__(f"upstream {kind}: {detail}")
        self.kind, self.detail = kind, detail


class UpstreamResponse:
    """A response whose headers have arrived; read the body with :meth:`read` or :meth:`chunks`."""

    __slots__ = ("_resp", "status", "content_type")

    def __init__(self, resp: aiohttp.ClientResponse):
        self._resp = resp
        self.status = resp.status
        self.content_type = resp.headers.get("Content-Type", _JSON)

    async def read(self) -> bytes:
        try:
            return await self._resp.read()
        except (asyncio.TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise UpstreamError("timeout", "no response body within the read timeout") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamError("dropped", str(exc) or type(exc).__name__) from exc
        finally:
            self._resp.release()

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives (for SSE)."""
        try:
            async for chunk in self._resp.content.iter_any():
                yield chunk
        except (asyncio.TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise UpstreamError("timeout", "stream stalled past the read timeout") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamError("dropped", str(exc) or type(exc).__name__) from exc

    def close(self) -> None:
        """Abandon the response (client gone): the connection is closed, not reused."""
        self._resp.close()

    def release(self) -> None:
        self._resp.release()


class Upstream:
    """A pooled keep-alive session to ``base_url`` (e.g. ``https://api.openai.com/v1``)."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 120.0,
        connections: int = 256,
    ):
        self.base_url = base_url.rstrip("/")
        self._prefix_len = len("/v1")  # client paths are /v1/...; base_url already ends where /v1 does
        self._headers = {"Content-Type": _JSON}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._timeout = aiohttp.ClientTimeout(total=None, connect=connect_timeout_s, sock_read=read_timeout_s)
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None

    def url(self, path: str) -> str:
        """The upstream URL of a client path ``/v1/...``."""
        return self.base_url + (path[self._prefix_len :] if path.startswith("/v1/") else path)

    async def start(self) -> None:
        """Open the session (inside the running event loop)."""
        connector = aiohttp.TCPConnector(limit=self._connections, keepalive_timeout=30, ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=self._timeout, headers=self._headers, skip_auto_headers=("User-Agent",)
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, method: str, path: str, body: bytes | None = None) -> UpstreamResponse:
        """Send a request; returns once the status and headers are in."""
        if self._session is None:
            await self.start()
        try:
            resp = await self._session.request(method, self.url(path), data=body)  # type: ignore[union-attr]
        except (asyncio.TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise UpstreamError("timeout", "no response within the timeout") from exc
        except aiohttp.ClientConnectorError as exc:
            raise UpstreamError("unreachable", str(exc)) from exc
        except aiohttp.ClientError as exc:
            raise UpstreamError("dropped", str(exc) or type(exc).__name__) from exc
        return UpstreamResponse(resp)
