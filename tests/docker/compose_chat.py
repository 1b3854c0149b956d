"""The compose deployment's chat, through its load balancer: members on
both replicas hear each other; one replica killed, the other's members
keep chatting; the replica back, messages cross again.

    python3 tests/docker/compose_chat.py PORT CONTAINER...

PORT is the load balancer's port on 127.0.0.1, CONTAINER the replicas'
container ids (the first is killed and started again). Every wait is
bounded; a failure exits non-zero with what went wrong.
"""

import base64
import json
import os
import socket
import struct
import subprocess
import sys
import time
import urllib.request

TIMEOUT = 10


class Client:
    """A minimal WebSocket client: text frames only, enough for the chat."""

    def __init__(self, port, path):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                raise OSError("closed during the handshake")
            head += chunk
        if not head.startswith(b"HTTP/1.1 101"):
            raise OSError(f"no upgrade: {head[:60]!r}")
        welcome = self.next_of("welcome")
        self.id = welcome["id"]
        self.instance = self.id.split(".")[0]

    def _exact(self, n):
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise OSError("closed")
            data += chunk
        return data

    def read(self):
        """The next text message, as JSON; OSError when closed or silent."""
        while True:
            b0, b1 = self._exact(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._exact(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._exact(8))[0]
            payload = self._exact(n)
            opcode = b0 & 0x0F
            if opcode == 8:
                raise OSError("closed by the server")
            if opcode == 1:
                return json.loads(payload)

    def next_of(self, kind):
        for _ in range(100):
            m = self.read()
            if m.get("type") == kind:
                return m
        raise OSError(f"no {kind} in 100 messages")

    def send(self, text):
        data = text.encode()
        mask = os.urandom(4)
        header = bytes([0x81])
        if len(data) < 126:
            header += bytes([0x80 | len(data)])
        else:
            header += bytes([0x80 | 126]) + struct.pack("!H", len(data))
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        self.sock.sendall(header + mask + masked)


def fail(message):
    sys.exit(f"FAIL: {message}")


def expect_text(client, text):
    try:
        got = client.next_of("message")
    except OSError as e:
        fail(f"{client.id} got no message ({e}), expected {text!r}")
    if got.get("text") != text:
        fail(f"{client.id} got {got.get('text')!r}, expected {text!r}")


def count(port, room):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/rooms/{room}", timeout=TIMEOUT) as r:
        return json.loads(r.read())["count"]


def wait_count(port, room, n):
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            if count(port, room) == n:
                return
        except OSError:
            pass
        time.sleep(0.2)
    fail(f"the count of {room} never reached {n}")


def healthy(container):
    out = subprocess.run(
        ["docker", "inspect", "-f", "{{.State.Health.Status}}", container],
        capture_output=True, text=True,
    )
    return out.stdout.strip() == "healthy"


def main():
    port = int(sys.argv[1])
    victim = sys.argv[2]
    room = "compose"
    # Members until two sit on each of two replicas (the balancer alternates).
    clients = []
    for _ in range(30):
        clients.append(Client(port, f"/ws/chat/{room}"))
        by = {}
        for c in clients:
            by.setdefault(c.instance, []).append(c)
        if len(by) >= 2 and all(len(v) >= 2 for v in by.values()):
            break
    else:
        fail(f"30 members did not sit two by two on two replicas: {sorted(by)}")
    wait_count(port, room, len(clients))
    first = clients[0]
    first.send("across replicas")
    for c in clients:
        expect_text(c, "across replicas")
    print(f"compose chat: {len(clients)} members on {len(by)} replicas heard each other")

    # One replica killed: its members are cut off, the others chat on.
    subprocess.run(["docker", "kill", victim], check=True, capture_output=True)
    # The balancer closes the sessions of a replica it marks down (two
    # failed checks, a second apart): the first member cut off names the
    # killed replica.
    gone = None
    deadline = time.time() + 20
    while gone is None and time.time() < deadline:
        for c in clients:
            try:
                c.sock.settimeout(0.2)
                c.next_of("never")
            except socket.timeout:
                continue
            except OSError:
                gone = c.instance
                break
    for c in clients:
        c.sock.settimeout(TIMEOUT)
    alive = [c for c in clients if c.instance != gone]
    dead = [c for c in clients if c.instance == gone]
    if not dead or len(alive) < 2:
        fail(f"after the kill: {len(alive)} members alive, {len(dead)} cut off")
    alive[0].send("still chatting")
    for c in alive:
        expect_text(c, "still chatting")
    print(f"compose chat: one replica killed, {len(alive)} members on the other chat on")

    # The replica back: a new member on it and the others hear each other.
    subprocess.run(["docker", "start", victim], check=True, capture_output=True)
    deadline = time.time() + 60
    while not healthy(victim):
        if time.time() > deadline:
            fail("the restarted replica never became healthy")
        time.sleep(0.5)
    survivors = {c.instance for c in alive}
    newcomer = None
    for _ in range(30):
        c = Client(port, f"/ws/chat/{room}")
        if c.instance not in survivors:
            newcomer = c
            break
        alive.append(c)
    if newcomer is None:
        fail("30 members, none on the restarted replica")
    wait_count(port, room, len(alive) + 1)
    newcomer.send("back again")
    for c in alive + [newcomer]:
        expect_text(c, "back again")
    alive[0].send("welcome back")
    expect_text(newcomer, "welcome back")
    print("compose chat: the restarted replica's member and the others hear each other")


if __name__ == "__main__":
    main()
