"""Chaos under load (benches/chaos.sh runs it): HTTP and WebSocket load on
a running ferricorn while workers are killed (SIGKILL, SIGSEGV) and the
supervisor is sent HUP, TTIN, TTOU, USR2 and USR1 at random, and Redis is
killed and restarted. Then every failure is held against one rule: only
what was in flight on a killed worker may fail.

    python3 chaos.py --port P --master PID --seconds S [--redis-port R --redis-cmd CMD]

Each HTTP connection asks GET /worker (which names the worker's pid) in a
loop; each WebSocket first asks GET /worker on its connection, then
upgrades it to /ws/echo and echoes numbered messages. A request that gets
no answer on a connection whose worker was stopped gracefully (HUP, TTOU,
USR2, a recycle) was sent as that worker closed the idle connection: it is
retried once on a new connection, as HTTP clients retry an idempotent
request, and counted apart. Anything else that fails is a violation. The
report is one JSON object on stdout.
"""

import argparse
import asyncio
import base64
import json
import os
import random
import signal
import struct
import subprocess
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("--port", type=int, required=True)
ap.add_argument("--master", type=int, required=True)
ap.add_argument("--seconds", type=float, default=180)
ap.add_argument("--http", type=int, default=24, help="HTTP connections")
ap.add_argument("--ws", type=int, default=16, help="WebSockets")
ap.add_argument("--every", type=float, default=1.5, help="mean seconds between chaos events")
ap.add_argument("--min-workers", type=int, default=2)
ap.add_argument("--max-workers", type=int, default=4)
ap.add_argument("--redis-port", type=int)
ap.add_argument("--redis-cmd", default="redis-server")
ap.add_argument("--seed", type=int, default=1)
args = ap.parse_args()
random.seed(args.seed)

T0 = time.monotonic()
now = lambda: time.monotonic() - T0  # noqa: E731
stop = False
killed = {}  # pid -> time it was killed
seen = {}  # pid -> (first seen, last seen) among the supervisor's children
events = []  # (time, what)
failures = []  # (time, kind, worker pid or None, what happened)
counts = {"http_ok": 0, "ws_connects": 0, "ws_echoes": 0, "ws_clean_closes": 0, "retried": 0}


def children():
    out = set()
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[1]) == args.master:
                    out.add(int(p))
            except OSError:
                pass
    return out


async def watch():
    while True:
        t = now()
        for pid in children():
            first, _ = seen.get(pid, (t, t))
            seen[pid] = (first, t)
        await asyncio.sleep(0.05)


def gone_at(pid):
    """When a worker was last seen alive (None if it still is)."""
    if pid not in seen or pid in children():
        return None
    return seen[pid][1]


async def read_response(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers, body


async def get_worker(reader, writer):
    writer.write(b"GET /worker HTTP/1.1\r\nHost: chaos\r\n\r\n")
    await writer.drain()
    status, headers, body = await asyncio.wait_for(read_response(reader), 10)
    if status != 200:
        raise RuntimeError(f"status {status}")
    return json.loads(body)["pid"], headers.get("connection", "").lower() == "close"


async def http_client():
    while not stop:
        pid, retry = None, False
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", args.port)
        except OSError as e:
            failures.append((now(), "connect", None, repr(e)))
            await asyncio.sleep(0.1)
            continue
        try:
            while not stop:
                start = now()
                try:
                    pid, close = await get_worker(reader, writer)
                except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError,
                        RuntimeError, ValueError) as e:
                    failures.append((now(), "http", pid, f"{type(e).__name__} {e} (sent at {start:.2f})"))
                    break
                counts["http_ok"] += 1
                if close:
                    break
        finally:
            writer.close()


def ws_frame(payload: bytes, opcode=1):
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([0x80 | opcode])
    head += bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack(">H", n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def ws_read(reader):
    b0, b1 = await reader.readexactly(2)
    n = b1 & 0x7F
    if n == 126:
        (n,) = struct.unpack(">H", await reader.readexactly(2))
    elif n == 127:
        (n,) = struct.unpack(">Q", await reader.readexactly(8))
    return b0 & 0x0F, await reader.readexactly(n)


async def ws_client(i):
    while not stop:
        pid = None
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", args.port)
        except OSError as e:
            failures.append((now(), "ws-connect", None, repr(e)))
            await asyncio.sleep(0.1)
            continue
        try:
            pid, close = await get_worker(reader, writer)
            if close:
                continue
            key = base64.b64encode(os.urandom(16)).decode()
            writer.write(
                f"GET /ws/echo HTTP/1.1\r\nHost: chaos\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Sec-WebSocket-Version: 13\r\n\r\n".encode()
            )
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            if b" 101 " not in head.split(b"\r\n")[0]:
                raise RuntimeError(head.split(b"\r\n")[0].decode())
            counts["ws_connects"] += 1
            n = 0
            while not stop:
                n += 1
                text = f"{i}:{n}".encode()
                writer.write(ws_frame(text))
                await writer.drain()
                op, data = await asyncio.wait_for(ws_read(reader), 10)
                if op == 8:
                    code = struct.unpack(">H", data[:2])[0] if len(data) >= 2 else None
                    # 1001 (going away: a graceful stop) and 1012 (service
                    # restart: a reload or upgrade) are a draining worker's.
                    if code not in (1001, 1012):
                        failures.append((now(), "ws-close", pid, f"close code {code}"))
                    else:
                        counts["ws_clean_closes"] += 1
                    break
                if data != text:
                    failures.append((now(), "ws-echo", pid, f"{data!r} for {text!r}"))
                    break
                counts["ws_echoes"] += 1
                await asyncio.sleep(0.02)
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, RuntimeError,
                ValueError) as e:
            failures.append((now(), "ws", pid, f"{type(e).__name__} {e}"))
        finally:
            writer.close()


def workers_now():
    return sorted(children())


async def chaos():
    setting = desired = len(workers_now())
    redis = None
    actions = ["SIGKILL", "SIGSEGV", "HUP", "TTIN", "TTOU", "USR2", "USR1"]
    if args.redis_port:
        actions.append("redis")
    while now() < args.seconds:
        await asyncio.sleep(random.expovariate(1 / args.every))
        what = random.choice(actions)
        if what in ("SIGKILL", "SIGSEGV"):
            ws = workers_now()
            if not ws:
                continue
            pid = random.choice(ws)
            killed[pid] = now()
            os.kill(pid, getattr(signal, what))
            what = f"{what} {pid}"
        elif what == "TTIN":
            if desired >= args.max_workers:
                continue
            desired += 1
            os.kill(args.master, signal.SIGTTIN)
        elif what == "TTOU":
            if desired <= args.min_workers:
                continue
            desired -= 1
            os.kill(args.master, signal.SIGTTOU)
        elif what == "redis":
            subprocess.run(["redis-cli", "-p", str(args.redis_port), "shutdown", "nosave"],
                           capture_output=True)
            await asyncio.sleep(random.uniform(0.5, 3))
            redis = subprocess.Popen(
                [args.redis_cmd, "--port", str(args.redis_port), "--save", "", "--appendonly", "no"],
                stdout=subprocess.DEVNULL)
            what = "redis restarted"
        else:
            if what in ("HUP", "USR2"):
                # A reload or an upgrade reads the settings again: the
                # worker count TTIN and TTOU changed goes back to them.
                desired = setting
            os.kill(args.master, getattr(signal, "SIG" + what))
        events.append((round(now(), 2), what))
    return desired, redis


def judge():
    """Each failure: allowed (in flight on a killed worker), retried (a
    retiring worker's idle connection), or a violation."""
    allowed, retried, violations = [], [], []
    for t, kind, pid, what in failures:
        if pid is not None and pid in killed and killed[pid] <= t + 0.5:
            allowed.append((t, kind, pid, what))
            continue
        if pid is None and any(abs(k - t) < 2 for k in killed.values()):
            # A new connection a worker accepted and died with, before it
            # could name itself.
            allowed.append((t, kind, pid, what))
            continue
        gone = gone_at(pid) if pid is not None else None
        if kind == "http" and gone is not None and t - 2 <= gone <= t + 35 and "IncompleteRead" in what:
            retried.append((t, kind, pid, what))
            continue
        violations.append((t, kind, pid, what))
    return allowed, retried, violations


async def main():
    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0.2)
    tasks = [asyncio.create_task(http_client()) for _ in range(args.http)]
    tasks += [asyncio.create_task(ws_client(i)) for i in range(args.ws)]
    desired, redis = await chaos()
    global stop
    stop = True
    await asyncio.wait(tasks, timeout=15)
    # Let the last replacements settle before the workers are judged.
    await asyncio.sleep(3)
    allowed, retried, violations = judge()
    counts["retried"] = len(retried)
    watcher.cancel()
    print(json.dumps({
        "seconds": round(now(), 1),
        "events": events,
        "killed": len(killed),
        "desired_workers": desired,
        "counts": counts,
        "failed_on_killed_workers": len(allowed),
        "of_them_before_naming_the_worker": sum(1 for a in allowed if a[2] is None),
        "retried_idle_connections_of_retiring_workers": len(retried),
        "violations": [list(v) for v in violations],
        "redis_pid": redis.pid if redis else None,
    }))


asyncio.run(main())
