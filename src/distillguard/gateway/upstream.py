"""The upstream client: pooled keep-alive HTTP/1.1 connections to the OpenAI-compatible upstream.

Built on :class:`~distillguard.gateway.http1.HTTP1Client` (httptools, the
parser uvicorn uses) rather than aiohttp or httpx: this client is most of what
the proxy adds per request besides the server itself, and it was measured side
by side on this machine (``docs/performance.md``, Gateway): sequential requests
to the fake upstream cost ~150 µs of CPU each through a pooled aiohttp session,
~630-710 µs through httpx.AsyncClient, and ~45 µs through this client.

The client's own ``Authorization`` header is never forwarded; the upstream key
(server-side configuration) is sent instead.  Failures are one
:class:`UpstreamError` with a ``kind`` the proxy turns into a status:
``timeout`` → 504, ``unreachable`` → 502, ``dropped`` (connection lost while
reading the body) → 502, or an SSE error event mid-stream.

Example:
    >>> up = Upstream("http://127.0.0.1:9/v1", api_key=None)
    >>> up.url("/v1/chat/completions")
    'http://127.0.0.1:9/v1/chat/completions'
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from distillguard.gateway.http1 import HTTP1Client, Response
from distillguard.gateway.http1 import HTTPError as UpstreamError

__all__ = ["Upstream", "UpstreamError", "UpstreamResponse"]

_JSON = b"application/json"


class UpstreamResponse:
    """A response whose headers have arrived; read the body with :meth:`read` or :meth:`chunks`.

    ``content_type`` is the raw header value (bytes), ``application/json`` when the upstream sent none.
    """

    __slots__ = ("_resp", "status", "content_type")

    def __init__(self, resp: Response):
        self._resp = resp
        self.status = resp.status
        self.content_type = resp.content_type or _JSON

    async def read(self) -> bytes:
        return await self._resp.read()

    def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives (for SSE)."""
        return self._resp.chunks()

    def close(self) -> None:
        """Abandon the response (client gone): the connection is closed, not reused."""
        self._resp.close()

    def release(self) -> None:
        """Done with the response (an unfinished one closes its connection)."""
        self._resp.release()


class Upstream:
    """A pool of keep-alive connections to ``base_url`` (e.g. ``https://api.openai.com/v1``)."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 120.0,
        connections: int = 256,
        keepalive_s: float = 4.0,
    ):
        self.base_url = base_url.rstrip("/")
        self._prefix_len = len("/v1")  # client paths are /v1/...; base_url already ends where /v1 does
        # what every request carries besides its line and length: nothing that identifies the client
        self._headers = b"Content-Type: application/json\r\nUser-Agent: distillguard\r\n"
        if api_key:
            self._headers += b"Authorization: Bearer " + api_key.encode("latin-1") + b"\r\n"
        self._options = {"connect_timeout_s": connect_timeout_s, "read_timeout_s": read_timeout_s, "connections": connections,
                         "keepalive_s": keepalive_s}
        self._client: HTTP1Client | None = None
        self._heads: dict[tuple[str, str], bytes] = {}

    def url(self, path: str) -> str:
        """The upstream URL of a client path ``/v1/...``."""
        return self.base_url + self._subpath(path)

    def _subpath(self, path: str) -> str:
        return path[self._prefix_len :] if path.startswith("/v1/") else path

    async def start(self) -> None:
        """Open the pool (inside the running event loop; connections open on first use)."""
        self._client = HTTP1Client(self.base_url, **self._options)
        self._heads = {}

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def send(self, method: str, path: str, body: bytes | None = None) -> UpstreamResponse:
        """Send a request; returns once the status and headers are in."""
        client = self._client
        if client is None:
            await self.start()
            client = self._client
        head = self._heads.get((method, path))
        if head is None:
            head = self._heads[(method, path)] = client.head(method, self._subpath(path), self._headers)  # type: ignore[union-attr]
        return UpstreamResponse(await client.request(head, body, idempotent=method == "GET"))  # type: ignore[union-attr]
