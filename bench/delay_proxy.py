#!/usr/bin/env python3
"""ssh's ProxyCommand for a mount far away: connects to HOST:PORT and relays stdin to it and
it to stdout, each chunk held DELAY seconds (in order) before it is passed on, so that every
round trip through the mount takes 2 x DELAY more.

    delay_proxy.py HOST PORT DELAY
"""

from __future__ import annotations

import os
import queue
import socket
import sys
import threading
import time


def relay(read, write, delay: float) -> None:
    """Pass what ``read`` gives to ``write``, each chunk ``delay`` seconds after it came."""
    held: queue.Queue[tuple[float, bytes]] = queue.Queue()

    def take() -> None:
        while data := read(1 << 16):
            held.put((time.monotonic() + delay, data))
        held.put((0.0, b""))

    threading.Thread(target=take, daemon=True).start()
    while True:
        due, data = held.get()
        if not data:
            return
        wait = due - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        write(data)


def main() -> None:
    host, port, delay = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    sock = socket.create_connection((host, port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()

    def out(data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(stdout, view):]

    upstream = threading.Thread(target=relay, args=(lambda n: os.read(stdin, n), sock.sendall, delay), daemon=True)
    upstream.start()
    relay(sock.recv, out, delay)
    os._exit(0)


if __name__ == "__main__":
    main()
