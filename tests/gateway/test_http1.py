"""The pooled HTTP/1.1 upstream client against the fake upstream (a real uvicorn server)."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from distillguard.gateway.http1 import HTTP1Client, HTTPError
from tests.gateway.factories import fake_upstream, free_port

HEADERS = b"Content-Type: application/json\r\n"


def body(i: int, **kw) -> bytes:
    return orjson.dumps({"model": "m", "messages": [{"role": "user", "content": f"q{i}"}], "max_tokens": 1 + i % 7, **kw})


@pytest.fixture(scope="module")
def upstream():
    with fake_upstream() as server:
        yield server


def test_concurrent_requests_over_few_connections_each_get_their_own_answer(upstream):
    """More requests than connections: each waits for a connection, a freed connection carries the
    next request at once, and no answer goes to the wrong request (or nowhere)."""

    async def go():
        client = HTTP1Client(upstream.url + "/v1", connections=2)
        head = client.head("POST", "/chat/completions", HEADERS)

        async def one(i: int):
            resp = await client.request(head, body(i))
            return resp.status, resp.content_type, orjson.loads(await resp.read())["usage"]["completion_tokens"]

        got = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(200))), 30)
        opened = client._open
        await client.close()
        return got, opened

    got, opened = asyncio.run(go())
    assert got == [(200, b"application/json", 1 + i % 7) for i in range(200)]
    assert opened <= 2


def test_streamed_answer_arrives_in_chunks_and_the_connection_is_reused(upstream):
    async def go():
        client = HTTP1Client(upstream.url + "/v1", connections=4)
        head = client.head("POST", "/chat/completions", HEADERS)
        texts = []
        for i in range(3):
            resp = await client.request(head, body(i, stream=True))
            assert resp.content_type.startswith(b"text/event-stream")
            texts.append(b"".join([chunk async for chunk in resp.chunks()]))
        opened = client._open
        await client.close()
        return texts, opened

    texts, opened = asyncio.run(go())
    assert all(t.rstrip().endswith(b"data: [DONE]") for t in texts)
    assert opened == 1  # one keep-alive connection carried all three


def test_failures_are_named(upstream):
    async def go():
        dead = HTTP1Client(f"http://127.0.0.1:{free_port()}/v1", connect_timeout_s=2)
        with pytest.raises(HTTPError) as unreachable:
            await dead.request(dead.head("GET", "/models"))
        client = HTTP1Client(upstream.url + "/v1", read_timeout_s=0.3)
        head = client.head("POST", "/chat/completions", HEADERS)
        with pytest.raises(HTTPError) as timeout:
            await client.request(head, body(1, fake={"delay_ms": 3000}))
        resp = await client.request(head, body(1, stream=True, max_tokens=20, fake={"drop_after": 3}))
        with pytest.raises(HTTPError) as dropped:
            async for _ in resp.chunks():
                pass
        ok = await client.request(head, body(2))  # the pool recovers: a new connection
        status = ok.status, await ok.read()
        await client.close()
        return unreachable.value.kind, timeout.value.kind, dropped.value.kind, status[0]

    assert asyncio.run(go()) == ("unreachable", "timeout", "dropped", 200)


def test_a_cancelled_request_closes_its_connection_and_frees_its_place(upstream):
    async def go():
        client = HTTP1Client(upstream.url + "/v1", connections=1)
        head = client.head("POST", "/chat/completions", HEADERS)
        slow = asyncio.create_task(client.request(head, body(1, fake={"delay_ms": 2000})))
        await asyncio.sleep(0.2)
        slow.cancel()  # the client went away
        with pytest.raises(asyncio.CancelledError):
            await slow
        resp = await asyncio.wait_for(client.request(head, body(2)), 5)  # the only place is free again
        status = resp.status
        await resp.read()
        await client.close()
        return status

    assert asyncio.run(go()) == 200


def test_an_idle_connection_past_keepalive_is_not_reused(upstream):
    """An upstream closes idle connections (uvicorn after 5 s): reusing one it is closing right then
    would fail a POST that must not be sent twice, so the pool lets them go first."""

    async def go():
        client = HTTP1Client(upstream.url + "/v1", keepalive_s=0.05)
        head = client.head("POST", "/chat/completions", HEADERS)
        await (await client.request(head, body(1))).read()
        first = client._idle[-1]
        await (await client.request(head, body(2))).read()
        kept = client._idle[-1] is first  # reused at once
        await asyncio.sleep(0.1)
        await (await client.request(head, body(3))).read()
        await client.close()
        return kept, first.closed

    assert asyncio.run(go()) == (True, True)


async def one_shot_server(answer: bytes) -> asyncio.AbstractServer:
    """A server that reads a request, writes ``answer`` and closes the connection."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def test_an_answer_delimited_by_the_close_is_read_to_the_end():
    """No Content-Length, no chunks: HTTP/1.1 says the body is everything until the server closes."""
    payload = orjson.dumps({"choices": [{"message": {"content": "x" * 70_000}}]})

    async def go():
        server = await one_shot_server(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n" + payload)
        client = HTTP1Client(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1")
        resp = await client.request(client.head("POST", "/chat/completions", HEADERS), body(1))
        got = resp.status, await resp.read()
        truncated = await one_shot_server(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
        short = HTTP1Client(f"http://127.0.0.1:{truncated.sockets[0].getsockname()[1]}/v1")
        resp = await short.request(short.head("POST", "/chat/completions", HEADERS), body(1))
        with pytest.raises(HTTPError) as dropped:  # a body shorter than its length is still a dropped answer
            await resp.read()
        opened = client._open, short._open
        for s in (server, truncated):
            s.close()
        return got, dropped.value.kind, opened

    assert asyncio.run(go()) == ((200, payload), "dropped", (0, 0))


def test_a_waiter_cancelled_as_a_place_frees_passes_the_place_on(upstream):
    async def go():
        client = HTTP1Client(upstream.url + "/v1", connections=1)
        head = client.head("POST", "/chat/completions", HEADERS)
        holder = await client.request(head, body(1, stream=True, fake={"stall_ms": 5000}))  # holds the only place
        second = asyncio.create_task(client.request(head, body(2)))
        third = asyncio.create_task(client.request(head, body(3)))
        while len(client._waiting) < 2:
            await asyncio.sleep(0)
        holder.close()  # the place frees and goes to the second request's waiter...
        second.cancel()  # ...whose client leaves before it can take it
        resp = await asyncio.wait_for(third, 5)
        await resp.read()
        await client.close()
        return resp.status, second.cancelled()

    assert asyncio.run(go()) == (200, True)


def test_a_connect_timeout_gives_its_place_back_once(monkeypatch):
    """asyncio closes a connection that was made as the timeout cancelled the connect, which calls the
    protocol's connection_lost: the place must not be given back twice."""

    async def go():
        client = HTTP1Client("http://127.0.0.1:9/v1", connect_timeout_s=0.05, connections=1)
        loop = asyncio.get_running_loop()

        async def made_then_cancelled(protocol_factory, *args, **kw):
            protocol = protocol_factory()
            protocol.connection_made(None)
            try:
                await asyncio.sleep(10)
            finally:
                protocol.connection_lost(None)

        monkeypatch.setattr(loop, "create_connection", made_then_cancelled)
        with pytest.raises(HTTPError) as timeout:
            await client.request(client.head("GET", "/models"))
        return timeout.value.kind, client._open

    assert asyncio.run(go()) == ("timeout", 0)


def test_a_connection_released_after_close_is_closed(upstream):
    async def go():
        client = HTTP1Client(upstream.url + "/v1")
        head = client.head("POST", "/chat/completions", HEADERS)
        resp = await client.request(head, body(1, stream=True, fake={"stall_ms": 300}))
        await client.close()  # the answer is still coming
        [_ async for _ in resp.chunks()]
        return client._open, client._idle

    assert asyncio.run(go()) == (0, [])


def test_a_get_retried_while_its_freed_place_is_taken_still_gets_an_answer(upstream):
    """A GET on a kept-alive connection that closes as the request goes out is sent again on a new
    connection.  When another request takes the freed place first, the retry waits; the connection
    handed to it once that request is done is a kept-alive one, so the retry closes it and opens its
    own in its place (rather than parking it idle and waiting for a place nothing will free)."""

    async def go():
        client = HTTP1Client(upstream.url + "/v1", connections=1)
        post = client.head("POST", "/chat/completions", HEADERS)
        await (await client.request(post, body(1))).read()
        stale = client._idle[-1]
        get = asyncio.create_task(client.request(client.head("GET", "/models"), idempotent=True))
        while stale.response is None:  # until the GET went out on the kept-alive connection
            await asyncio.sleep(0)
        stale.transport.abort()  # its connection_lost runs on the next loop turn...
        other = asyncio.create_task(client.request(post, body(2)))  # ...just before this request takes the freed place
        resp = await asyncio.wait_for(get, 5)
        got = resp.status, orjson.loads(await resp.read())["object"]
        await (await other).read()
        opened = client._open
        await client.close()
        return got, opened, client._open

    assert asyncio.run(go()) == ((200, "list"), 1, 0)


def test_a_fresh_connection_with_every_place_idle_replaces_the_least_recently_used(upstream):
    """A retry needs a new connection: with every place held by an idle one, it closes the one idle
    longest and opens its own in that place, instead of waiting for a place to free."""

    async def go():
        client = HTTP1Client(upstream.url + "/v1", connections=2)
        post = client.head("POST", "/chat/completions", HEADERS)
        answers = await asyncio.gather(*(client.request(post, body(i)) for i in range(2)))
        for resp in answers:
            await resp.read()
        older, newer = client._idle
        fresh = await asyncio.wait_for(client._acquire(fresh=True), 5)
        resp, headers = fresh.start(client.head("GET", "/models") + b"\r\n")
        await headers
        status = resp.status
        await resp.read()
        state = older.closed, newer.closed, fresh in (older, newer), client._open
        await client.close()
        return status, state, client._open

    assert asyncio.run(go()) == (200, (True, False, False, 2), 0)
