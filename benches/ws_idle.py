"""Memory per idle WebSocket: opens N WebSockets to a server on loopback,
echoes one short message on each, holds them open, and prints the growth
of the server's RSS (summed over the given processes) per socket, in KiB.

    python3 benches/ws_idle.py PORT PATH N PID...
"""

import os
import socket
import sys
import time


def rss_kib(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                total += next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
        except (OSError, StopIteration):
            pass
    return total


def open_socket(port, path):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            raise SystemExit("the server closed during the handshake")
        head += chunk
    if not head.startswith(b"HTTP/1.1 101"):
        raise SystemExit(f"no upgrade: {head.splitlines()[0]!r}")
    # One masked text frame, "hi", and its echo (an unmasked frame of 2 bytes).
    mask = os.urandom(4)
    s.sendall(bytes([0x81, 0x82]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(b"hi")))
    echo = head.split(b"\r\n\r\n", 1)[1]
    while len(echo) < 4:
        chunk = s.recv(64)
        if not chunk:
            raise SystemExit("the server closed before echoing")
        echo += chunk
    if echo[2:4] != b"hi":
        raise SystemExit(f"unexpected echo {echo!r}")
    return s


def main():
    port, path, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    pids = sys.argv[4:]
    before = rss_kib(pids)
    sockets = [open_socket(port, path) for _ in range(n)]
    time.sleep(0.5)
    after = rss_kib(pids)
    print(f"{(after - before) / n:.1f}")
    for s in sockets:
        s.close()


main()
