"""A TCP relay on 127.0.0.1 that can cut a connection at a chosen moment (for the tests).

Between a client and a real server (the test PostgreSQL cluster), it relays
bytes as they are. Armed, it cuts the next connection that sends:

- ``cut_next("request")``: the next bytes from a client (a COMMIT, say) are
  dropped and the client's side is closed; the server's side stays open, so
  the server's session waits, its transaction open, as after a network cut.
- ``cut_next("reply")``: the next bytes from the server (a COMMIT's reply)
  are dropped and both sides are closed: the server did the work, the client
  never hears of it.

``refusing = True`` closes every new connection at once (a server out of reach).
"""

from __future__ import annotations

import socket
import threading
from contextlib import suppress
from typing import Literal

Direction = Literal["request", "reply"]
_CHUNK = 65536


class CutRelay:
    """One listening relay to ``127.0.0.1:target``; ``port`` is where clients connect."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.refusing = False
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = int(self._listener.getsockname()[1])
        self._armed: Direction | None = None
        self._refuse_after = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._stopping = threading.Event()
        self._threads = [threading.Thread(target=self._serve, daemon=True)]
        self._threads[0].start()

    def cut_next(self, direction: Direction, *, then_refuse: bool = False) -> None:
        """Cut the next connection to send in ``direction``; ``then_refuse``: go out of reach."""
        with self._lock:
            self._armed, self._refuse_after = direction, then_refuse

    def stop(self) -> None:
        self._stopping.set()
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                _shut(sock)
        for thread in self._threads:
            thread.join(timeout=5)

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self.refusing:
                _shut(client)
                continue
            server = socket.create_connection(("127.0.0.1", self.target), timeout=5)
            client.settimeout(None)
            server.settimeout(None)
            with self._lock:
                self._sockets += [client, server]
            for args in ((client, server, "request"), (server, client, "reply")):
                thread = threading.Thread(target=self._pump, args=args, daemon=True)
                self._threads.append(thread)
                thread.start()

    def _pump(self, src: socket.socket, dst: socket.socket, direction: Direction) -> None:
        client, server = (src, dst) if direction == "request" else (dst, src)
        while True:
            try:
                data = src.recv(_CHUNK)
            except OSError:
                data = b""
            if not data:  # one side ended: end the other
                _shut(dst)
                return
            if self._take(direction):
                _shut(client)
                if direction == "reply":
                    _shut(server)
                return
            try:
                dst.sendall(data)
            except OSError:
                return

    def _take(self, direction: Direction) -> bool:
        with self._lock:
            if self._armed != direction:
                return False
            self._armed = None
            if self._refuse_after:
                self.refusing = True
            return True


def _shut(sock: socket.socket) -> None:
    with suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
