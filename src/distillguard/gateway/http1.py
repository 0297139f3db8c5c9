"""A small pooled HTTP/1.1 client on httptools, for the one upstream the gateway talks to.

Why not aiohttp: its per-request machinery (request and response objects,
header multidicts, stream readers, cookie and redirect handling) cost ~150 µs of
CPU per proxied request on this machine, the largest part of what the proxy's
event loop spends outside uvicorn.  The gateway needs much less: one host,
keep-alive connections, a request written with one ``transport.write``, the
response's status, content type and body, parsed by the same C parser uvicorn
uses.

* **Pool**: idle connections are reused most-recent first, for at most
  ``keepalive_s`` of idleness; at most ``connections`` open at once (more
  requests wait for one).  A connection the server closed is dropped as soon as
  its ``connection_lost`` arrives.  Like aiohttp, only an idempotent request
  (``GET``) that fails on a reused connection before any byte of the answer came
  back is sent once more, on a new connection (the server closed the idle one as
  it went out); a POST is never sent twice.  When every place is taken, that new
  connection replaces an idle one (least recently used, or the one handed to the
  retry) rather than wait for a place that idle connections may never free.
* **Timeouts**: ``connect_timeout_s`` to open a connection, ``read_timeout_s``
  of silence while waiting for the answer (between stream chunks too).
* **Framing**: a body delimited by Content-Length or chunked encoding, or, with
  neither, by the server closing the connection (read to the end; such a
  connection is not reused).
* **Back-pressure**: past 1 MiB of unread body, reading from the socket pauses.
* **Failures** are :class:`HTTPError` with ``kind`` ``timeout``, ``unreachable``
  (cannot connect) or ``dropped`` (connection lost or unparseable answer).

Example:
    >>> client = HTTP1Client("http://127.0.0.1:9", connect_timeout_s=1)
    >>> client.host, client.port, client.base_path
    ('127.0.0.1', 9, '')
    >>> # resp = await client.request("POST", "/v1/chat/completions", b"{}", headers=b"Content-Type: application/json\\r\\n")
    >>> # resp.status, await resp.read()
"""

from __future__ import annotations

import asyncio
import collections
import ssl as ssl_module
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httptools

_PAUSE_AT = 1 << 20  # unread body bytes past which the socket is not read


class HTTPError(Exception):
    """The server could not be reached, was too slow, or dropped the connection."""

    def __init__(self, kind: str, detail: str):
        super().__init__(f"{kind}: {detail}")
        self.kind, self.detail = kind, detail


class Response:
    """An answer whose status and headers have arrived; the body comes with :meth:`read` or :meth:`chunks`."""

    __slots__ = ("status", "content_type", "_conn", "_buf", "_buffered", "_waiter", "_error", "complete", "_last_rx")

    def __init__(self, conn: _Connection):
        self.status = 0
        self.content_type = b""
        self._conn = conn
        self._buf: list[bytes] = []
        self._buffered = 0
        self._waiter: asyncio.Future | None = None
        self._error: HTTPError | None = None
        self.complete = False
        self._last_rx = 0.0

    # -- fed by the connection --------------------------------------------------------------------
    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _feed(self, data: bytes) -> None:
        self._buf.append(data)
        self._buffered += len(data)
        if self._buffered > _PAUSE_AT:
            self._conn.pause()
        self._wake()

    def _fail(self, error: HTTPError) -> None:
        if self._error is None and not self.complete:
            self._error = error
            self._wake()

    # -- read by the caller -----------------------------------------------------------------------
    async def _wait(self) -> None:
        self._waiter = self._conn.loop.create_future()
        try:
            await self._waiter
        except asyncio.CancelledError:
            self.close()  # the caller gave up (client gone): this connection's answer is never read
            raise
        finally:
            self._waiter = None

    def _take(self) -> bytes:
        buf = self._buf
        data = buf[0] if len(buf) == 1 else b"".join(buf)
        buf.clear()
        if self._buffered > _PAUSE_AT:
            self._conn.resume()
        self._buffered = 0
        return data

    async def read(self) -> bytes:
        """The whole body."""
        while not self.complete:
            if self._error is not None:
                raise self._error
            await self._wait()
        return self._take() if self._buf else b""

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives."""
        while True:
            if self._buf:
                yield self._take()
            elif self.complete:
                return
            elif self._error is not None:
                raise self._error
            else:
                await self._wait()

    def close(self) -> None:
        """Abandon the answer: its connection is closed, not reused."""
        if not self.complete:
            self._conn.abort()

    def release(self) -> None:
        """Done with the answer: an unfinished one closes its connection (it cannot carry another request)."""
        self.close()


class _Connection(asyncio.Protocol):
    """One keep-alive connection: a transport, a response parser, at most one answer in flight."""

    def __init__(self, client: HTTP1Client):
        self.client = client
        self.loop = client.loop
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.response: Response | None = None
        self.closed = False
        self.paused = False
        self.used = False  # has carried a request before (a failure may be a stale keep-alive)
        self.got_bytes = False  # something of the current answer arrived
        self.delimited = False  # the current answer's body has a length or chunks (else it ends at the close)
        self.counted = True  # holds a place in the client's connection limit
        self.idle_since = 0.0
        self._headers_waiter: asyncio.Future | None = None
        self._timer: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol -------------------------------------------------------------------------
    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        response = self.response
        if response is None:  # bytes nobody asked for: the connection is out of step, drop it
            self.abort()
            return
        response._last_rx = self.loop.time()
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(HTTPError("dropped", f"unreadable answer from the upstream: {exc}"))
            self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        response = self.response
        if exc is None and response is not None and response.status and not self.delimited:
            self._complete(keep=False)  # an answer without length or chunks ends where the server closes
        self._fail(HTTPError("dropped", str(exc) if exc else "the upstream closed the connection"))
        self.client._forget(self)

    # -- parser callbacks -------------------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        n = len(name)
        if n == 12 and name.lower() == b"content-type":
            self.response.content_type = value  # type: ignore[union-attr]
        elif n == 14 and name.lower() == b"content-length":
            self.delimited = True
        elif n == 17 and name.lower() == b"transfer-encoding" and b"chunked" in value.lower():
            self.delimited = True

    def on_headers_complete(self) -> None:
        self.response.status = self.parser.get_status_code()  # type: ignore[union-attr]
        waiter, self._headers_waiter = self._headers_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def on_body(self, body: bytes) -> None:
        self.response._feed(body)  # type: ignore[union-attr]

    def on_message_complete(self) -> None:
        self._complete(self.parser.should_keep_alive())

    def _complete(self, keep: bool) -> None:
        response = self.response
        self.response = None
        self._cancel_timer()
        response.complete = True  # type: ignore[union-attr]
        response._wake()  # type: ignore[union-attr]
        if keep and not self.closed:
            self.client._release(self)
        else:
            self.abort()

    # -- requests ---------------------------------------------------------------------------------
    def start(self, data: bytes) -> tuple[Response, asyncio.Future]:
        """Send one request; the future resolves when the answer's headers are in.

        The caller awaits its own future: once the answer is complete this connection may already
        carry the next request (with a waiter of its own).
        """
        response = self.response = Response(self)
        response._last_rx = self.loop.time()
        self.got_bytes = self.delimited = False
        waiter = self._headers_waiter = self.loop.create_future()
        self.transport.write(data)  # type: ignore[union-attr]
        self._arm(self.client.read_timeout_s)
        return response, waiter

    def _arm(self, delay: float) -> None:
        self._timer = self.loop.call_later(delay, self._check_timeout)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check_timeout(self) -> None:
        """Read timeout: silence since the last byte (one timer per answer, re-armed, not per chunk)."""
        self._timer = None
        response = self.response
        if response is None:
            return
        left = response._last_rx + self.client.read_timeout_s - self.loop.time()
        if left > 0:
            self._arm(left)
            return
        self._fail(HTTPError("timeout", "no data from the upstream within the read timeout"))
        self.abort()

    def _fail(self, error: HTTPError) -> None:
        self._cancel_timer()
        waiter, self._headers_waiter = self._headers_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)
        if self.response is not None:
            self.response._fail(error)

    def pause(self) -> None:
        if not self.paused and not self.closed:
            self.paused = True
            self.transport.pause_reading()  # type: ignore[union-attr]

    def resume(self) -> None:
        if self.paused and not self.closed:
            self.paused = False
            self.transport.resume_reading()  # type: ignore[union-attr]

    def abort(self) -> None:
        """Close now (an answer in flight is abandoned); the connection leaves the pool."""
        self._cancel_timer()
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.close()
        self.client._forget(self)


class HTTP1Client:
    """A pool of keep-alive HTTP/1.1 connections to one ``http://`` or ``https://`` origin (see the module docstring).

    Create it inside the event loop that uses it.
    """

    def __init__(self, base_url: str, *, connect_timeout_s: float = 5.0, read_timeout_s: float = 120.0, connections: int = 256,
                 keepalive_s: float = 30.0, ssl_context: ssl_module.SSLContext | None = None):  # fmt: skip
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.secure = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.secure else 80)
        self.base_path = parts.path.rstrip("/")
        default_port = self.port == (443 if self.secure else 80)
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.host_header = (host if default_port else f"{host}:{self.port}").encode("idna")
        self.ssl = (ssl_context or ssl_module.create_default_context()) if self.secure else None
        self.connect_timeout_s, self.read_timeout_s = connect_timeout_s, read_timeout_s
        self.max_connections = connections
        self.keepalive_s = keepalive_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle: list[_Connection] = []
        self._open = 0  # connections open or being opened
        self._waiting: collections.deque[asyncio.Future] = collections.deque()
        self._closed = False

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def head(self, method: str, path: str, headers: bytes = b"") -> bytes:
        """The request line and the fixed headers for ``path`` (relative to the base URL's path);
        :meth:`request` adds Content-Length.  Build it once per route."""
        return f"{method} {self.base_path}{path} HTTP/1.1\r\n".encode("latin-1") + b"Host: " + self.host_header + b"\r\n" + headers

    async def request(self, head: bytes, body: bytes | None = None, *, idempotent: bool = False) -> Response:
        """Send ``head`` (from :meth:`head`) and ``body``; returns once the answer's status and headers are in."""
        data = head + (b"Content-Length: %d\r\n\r\n" % len(body) + body if body is not None else b"\r\n")
        conn = await self._acquire()
        reused = conn.used
        try:
            return await self._send(conn, data)
        except HTTPError as err:
            if not (idempotent and reused and err.kind == "dropped" and not conn.got_bytes):
                raise
        # the server closed a kept-alive connection as the request went out: once more, on a new one
        return await self._send(await self._acquire(fresh=True), data)

    async def _send(self, conn: _Connection, data: bytes) -> Response:
        conn.used = True
        response, headers = conn.start(data)
        try:
            await headers
        except asyncio.CancelledError:
            if not response.complete:  # a complete answer's connection may already carry another request
                conn.abort()
            raise
        return response

    # -- the pool -----------------------------------------------------------------------------------
    async def _acquire(self, *, fresh: bool = False) -> _Connection:
        """A connection for one request: an idle one, else a new one; ``fresh``: always a new one."""
        while True:
            if not fresh:
                conn = self._pop_idle()
                if conn is not None:
                    return conn
            if self._open < self.max_connections:
                self._open += 1
                break
            # every place is taken: a fresh request must not wait on places held by idle connections, which
            # nothing frees (an idle connection closes only when the server closes it or a request pops it)
            if fresh and self._take_idle_place():
                break
            waiter = self.loop.create_future()
            self._waiting.append(waiter)
            try:
                conn = await waiter
            except asyncio.CancelledError:  # what was handed to this waiter goes to the next one
                if waiter.done() and not waiter.cancelled():
                    if waiter.result() is not None:
                        self._release(waiter.result())
                    else:
                        self._wake_one()
                raise
            if conn is not None and not conn.closed:
                if not fresh:
                    return conn
                self._take_place_of(conn)  # a kept-alive connection: a fresh request closes it and opens its own
                break
            # woken with a place that another request may have taken since, or handed a connection that
            # closed since (its place went to the next waiter): look again
        # the place just taken belongs to this connection from here on: given back once (abort → _forget),
        # whether opening fails before the connection exists or after its connection_lost already ran
        conn = _Connection(self)
        try:
            await asyncio.wait_for(
                self.loop.create_connection(lambda: conn, self.host, self.port, ssl=self.ssl,
                                            server_hostname=self.host if self.secure else None),
                self.connect_timeout_s,
            )  # fmt: skip
        except asyncio.TimeoutError as exc:
            conn.abort()
            raise HTTPError("timeout", f"no connection to {self.host}:{self.port} within {self.connect_timeout_s:g} s") from exc
        except (OSError, ssl_module.SSLError) as exc:
            conn.abort()
            raise HTTPError("unreachable", f"cannot connect to {self.host}:{self.port}: {exc}") from exc
        except BaseException:
            conn.abort()
            raise
        if conn.closed:  # lost between opening and this task running again
            raise HTTPError("dropped", f"{self.host}:{self.port} closed the connection as it opened")
        return conn

    def _pop_idle(self) -> _Connection | None:
        """The most recently idle connection still open and not idle too long (the others are closed)."""
        idle = self._idle
        if idle:
            now = self.loop.time()
            while idle:
                conn = idle.pop()
                if conn.closed:
                    continue
                if now - conn.idle_since > self.keepalive_s:
                    conn.abort()  # the server may be closing it right now: not worth the race
                    continue
                return conn
        return None

    def _take_idle_place(self) -> bool:
        """Close the least recently used idle connection and keep its place for the caller."""
        idle = self._idle
        while idle:
            conn = idle.pop(0)
            if not conn.closed:  # a closed one gave its place back already
                self._take_place_of(conn)
                return True
        return False

    def _take_place_of(self, conn: _Connection) -> None:
        """Close ``conn``; its place passes to the caller, not back to the pool (so no waiter takes it meanwhile)."""
        conn.counted = False
        conn.abort()

    def _release(self, conn: _Connection) -> None:
        """A connection is free again: to a waiting request, else to the idle list (closed once the client is)."""
        if conn.closed:
            return
        if self._closed:
            conn.abort()
            return
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        conn.idle_since = self.loop.time()
        self._idle.append(conn)

    def _forget(self, conn: _Connection) -> None:
        """A connection closed: its place in the limit goes to a waiting request."""
        if conn.counted:
            conn.counted = False
            self._open -= 1
            self._wake_one()

    def _wake_one(self) -> None:
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)  # no connection handed over: the waiter may open one
                return

    async def close(self) -> None:
        """Close every connection."""
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.abort()
