"""A TCP proxy between the agent and the hub that misbehaves on command.

Modes (switchable at any time; they apply to open connections at their next chunk of data too,
so a mode change lands in the middle of a request or keep-alive connection):

* ``pass``: forward both ways.
* ``stall``: a dead link that never says so - connections are accepted, nothing is forwarded
  and nothing is closed. Data held while stalled moves on (late) once the mode changes.
* ``reset``: abort connections with a TCP RST (SO_LINGER 0) as soon as a byte moves.
* ``drop_response``: forward the request to the hub, read the hub's answer, then RST the
  client instead of passing it on: the hub committed, the agent never heard.

With ``record=True`` it also keeps every byte the client sent, so a test can read back which
requests went to the hub and in what order (``requests()``), whatever the timing was.
"""

from __future__ import annotations

import contextlib
import itertools
import select
import socket
import struct
import threading
import time
from typing import Literal

Mode = Literal["pass", "stall", "reset", "drop_response"]

_CHUNK = 65536
_POLL_S = 0.05


def _abort(sock: socket.socket) -> None:
    """Close with RST instead of FIN."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


class _Conn:
    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client = client
        self.upstream = upstream
        self.closed = threading.Event()
        self.sent = bytearray()  # client -> upstream, when the proxy records
        # (offset in sent, proxy-wide forwarding number) of each chunk recorded: the order of
        # requests across connections (the agent keeps two on the wire in a drain).
        self.marks: list[tuple[int, int]] = []

    def abort(self) -> None:
        if not self.closed.is_set():
            self.closed.set()
            _abort(self.client)
            _abort(self.upstream)

    def close(self) -> None:
        if not self.closed.is_set():
            self.closed.set()
            for s in (self.client, self.upstream):
                with contextlib.suppress(OSError):
                    s.close()


class FaultProxy:
    def __init__(self, upstream_port: int, port: int = 0, *, record: bool = False) -> None:
        self.upstream_port = upstream_port
        self.record = record
        self._recorded: list[_Conn] = []  # every connection, in the order they were accepted
        self._listener = socket.create_server(("127.0.0.1", port))
        self._listener.settimeout(_POLL_S)
        self.port = int(self._listener.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.mode: Mode = "pass"
        # How many connections each fault hit (proof that the fault really happened).
        self.resets = 0
        self.dropped_responses = 0
        self._conns: list[_Conn] = []
        self._lock = threading.Lock()
        self._forwarded = itertools.count()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> FaultProxy:
        self._spawn(self._accept_loop)
        return self

    def set_mode(self, mode: Mode) -> None:
        self.mode = mode

    def requests(self) -> list[tuple[bytes, dict[str, str], bytes]]:
        """``(request line, headers, body)`` of every whole request forwarded so far, in order.

        In the order their first bytes were forwarded, across connections."""
        with self._lock:
            conns = [(bytes(c.sent), list(c.marks)) for c in self._recorded]
        out: list[tuple[int, tuple[bytes, dict[str, str], bytes]]] = []
        for data, marks in conns:
            start = 0  # offset of the request in conn.sent
            while True:
                head, sep, rest = data.partition(b"\r\n\r\n")
                if not sep:
                    break
                line, *fields = head.split(b"\r\n")
                headers = {}
                for f in fields:
                    name, _, value = f.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                n = int(headers.get("content-length", "0"))
                if len(rest) < n:
                    break  # cut off mid-body: never reached the hub whole
                # The forwarding number of the chunk the request starts in.
                order = next(num for off, num in reversed(marks) if off <= start)
                out.append((order, (line, headers, rest[:n])))
                start += len(head) + len(sep) + n
                data = rest[n:]
        return [request for _, request in sorted(out, key=lambda o: o[0])]

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            c.close()
        for t in self._threads:
            t.join(5)

    def _spawn(self, target: object, *args: object) -> None:
        t = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        self._threads.append(t)
        t.start()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=2)
            except OSError:
                _abort(client)  # hub down: the agent sees a refused/reset connection
                continue
            conn = _Conn(client, upstream)
            with self._lock:
                self._conns = [c for c in self._conns if not c.closed.is_set()] + [conn]
                if self.record:
                    self._recorded.append(conn)
            self._spawn(self._pump, conn, client, upstream, False)
            self._spawn(self._pump, conn, upstream, client, True)

    def _hold_while_stalled(self, conn: _Conn) -> None:
        while self.mode == "stall" and not conn.closed.is_set() and not self._stop.is_set():
            time.sleep(_POLL_S)

    def _pump(self, conn: _Conn, src: socket.socket, dst: socket.socket, is_response: bool) -> None:
        try:
            while not conn.closed.is_set():
                self._hold_while_stalled(conn)
                ready, _, _ = select.select([src], [], [], _POLL_S)
                if not ready:
                    continue
                data = src.recv(_CHUNK)
                if not data:
                    conn.close()
                    return
                self._hold_while_stalled(conn)
                mode = self.mode
                if mode == "reset":
                    self.resets += 1
                    conn.abort()
                    return
                if mode == "drop_response" and is_response:
                    # The hub answers only after its commit: this byte proves the batch is in.
                    self.dropped_responses += 1
                    conn.abort()
                    return
                if self.record and not is_response:
                    with self._lock:
                        conn.marks.append((len(conn.sent), next(self._forwarded)))
                    conn.sent += data
                dst.sendall(data)
        except (OSError, ValueError):  # ValueError: select() on a socket closed meanwhile
            conn.abort()
