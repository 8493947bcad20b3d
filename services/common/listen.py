"""The listening socket of every HTTP service (registry, serving).

>>> sock = listen("127.0.0.1", 0)
>>> sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
True
>>> sock.close()
"""

from __future__ import annotations

import socket

BACKLOG = 2048


def listen(host: str, port: int, *, accept: bool = True) -> socket.socket:
    """A listening socket, bound first so a busy port is reported before anything starts.

    ``accept=False`` only binds: connections are refused until the caller calls
    ``sock.listen(BACKLOG)`` (serving opens HTTP once its models are loaded, so a client
    is never left waiting in the backlog or answered 503 by a replica that is starting).

    ``proto=IPPROTO_TCP``: asyncio sets TCP_NODELAY only on sockets that say so, and
    uvicorn writes a response's head and body separately; with Nagle on, each small
    response waits ~40 ms for the client's delayed ACK. Accepted sockets inherit NODELAY.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
        if accept:
            sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock
