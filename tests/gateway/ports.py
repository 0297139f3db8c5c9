"""Localhost ports for test servers."""

from __future__ import annotations

import socket

_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A localhost port that is free now and was not handed out before in this test process.

    The OS may offer a port it just gave back: two calls in a row once returned the same port, and the
    gateway of a test then failed to bind beside its upstream ("address already in use").
    """
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port
