"""The soak (benches/soak.sh runs it): a long run against one ferricorn
server, sampling every process's memory, open file descriptors and the
shared memory's resident size, to show they stay flat.

    python3 soak.py --port P --master PID --wrk WRK --fanout FANOUT-LOAD
        --config FILE [--requests N] [--connects N] [--deliveries N] [--recycles N]

Four phases, one after another:
1. HTTP: wrk (1 thread, 32 connections, GET /) in rounds until N requests
   (default 10,000,000) are served;
2. WebSocket churn: N connects (default 200,000), each an upgrade to
   /ws/echo, one echo, and a close, from 64 concurrent clients;
3. channel layer: fanout-load rounds (1,000 members in 10 rooms, 1,000
   publishes/s: 100,000 deliveries/s) until N deliveries (default
   10,000,000);
4. recycling: --max-requests set by a reload (the config file, then HUP)
   and wrk until the workers have been recycled N times (default 40).

A sampler reads, every 2 s, the supervisor's RSS and fds, each worker's RSS
and fds, the worker cells in use and the groups in the workers' tables
(from /metrics), and the resident size of the shared memory (the memfd mapping in
the supervisor's smaps). The first 10% of each phase is warm-up. The report
gives, for each phase, each quantity's value after warm-up and at the end,
and its least-squares slope: per million requests, per 100,000 connects,
per million deliveries, per 10 recycles; and each worker's RSS over its
own life in the HTTP phase. One JSON object on stdout, and
a table on stderr.
"""

import argparse
import asyncio
import base64
import json
import os
import re
import struct
import subprocess
import sys
import threading
import time
import urllib.request

ap = argparse.ArgumentParser()
ap.add_argument("--port", type=int, required=True)
ap.add_argument("--master", type=int, required=True)
ap.add_argument("--wrk", default="wrk")
ap.add_argument("--fanout", required=True)
ap.add_argument("--requests", type=int, default=10_000_000)
ap.add_argument("--connects", type=int, default=200_000)
ap.add_argument("--deliveries", type=int, default=10_000_000)
ap.add_argument("--config", required=True, help="the server's config file, for the recycle phase")
ap.add_argument("--recycles", type=int, default=40)
ap.add_argument("--recycle-every", type=int, default=50_000)
ap.add_argument("--samples", help="write every sample here, one JSON object a line")
args = ap.parse_args()

samples = []  # dicts
phase = {"name": "start", "progress": 0}
done = threading.Event()


def children():
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == args.master:
                        out.append(int(p))
            except OSError:
                pass
    return out


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def shm_kib():
    """KiB of the shared memory resident in the supervisor's mapping."""
    total, inside = 0, False
    with open(f"/proc/{args.master}/smaps") as f:
        for line in f:
            if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                inside = "memfd:ferricorn-shared" in line
            elif inside and line.startswith("Rss:"):
                total += int(line.split()[1])
    return total


def metrics():
    with urllib.request.urlopen(f"http://127.0.0.1:{args.port}/metrics", timeout=5) as r:
        return r.read().decode()


def family(text, name):
    """The samples of a metric family in /metrics text."""
    return [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line.startswith(name + "{") or line.startswith(name + " ")]


def counter(name):
    """The sum of a counter family's samples in /metrics."""
    return sum(family(metrics(), name))


def sampler():
    while not done.is_set():
        try:
            workers = {}
            kids = children()
            text = metrics()
            if phase.get("counter"):
                phase["progress"] = sum(family(text, phase["counter"])) - phase["base"]
            for pid in kids:
                try:
                    with open(f"/proc/{pid}/stat") as f:
                        start = int(f.read().rsplit(")", 1)[1].split()[19])
                    workers[pid] = {"rss": rss_kib(pid), "fds": fds(pid), "start": start}
                except OSError:
                    pass
            samples.append({
                "t": time.monotonic(),
                "phase": phase["name"],
                "progress": phase["progress"],
                "sup_rss": rss_kib(args.master),
                "sup_fds": fds(args.master),
                "shm": shm_kib(),
                # Cells in use (a worker's, live or not yet released) and
                # groups in the workers' tables.
                "shm_cells": len(family(text, "ferricorn_worker_heartbeat_age_seconds")),
                "shm_groups": sum(family(text, "ferricorn_worker_channel_groups")),
                "workers": workers,
            })
        except OSError:
            pass
        done.wait(2)


def counted(name, family):
    """Starts a phase whose progress the server counts in `family`."""
    phase.update(name=name, progress=0, counter=family, base=counter(family))


def http_phase():
    served = 0
    counted("http", "ferricorn_http_requests_total")
    while served < args.requests:
        out = subprocess.run(
            [args.wrk, "-t1", "-c32", "-d20s", f"http://127.0.0.1:{args.port}/"],
            capture_output=True, text=True, check=True).stdout
        n = int(re.search(r"(\d+) requests in", out).group(1))
        bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        errors = re.search(r"Socket errors: (.*)", out)
        if bad or errors:
            print(f"wrk: {bad.group(0) if bad else ''} {errors.group(0) if errors else ''}",
                  file=sys.stderr)
        served += n
    return served


async def ws_churn():
    phase.update(name="websocket", progress=0, counter=None)
    left = [args.connects]
    failed = {}

    async def one():
        reader, writer = await asyncio.open_connection("127.0.0.1", args.port)
        try:
            key = base64.b64encode(os.urandom(16)).decode()
            writer.write(
                f"GET /ws/echo HTTP/1.1\r\nHost: soak\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Sec-WebSocket-Version: 13\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            if b" 101 " not in head[:20]:
                raise RuntimeError(head[:40])
            mask = os.urandom(4)
            writer.write(bytes([0x81, 0x82]) + mask + bytes(b ^ mask[i] for i, b in enumerate(b"hi")))
            echo = await reader.readexactly(4)
            if echo != b"\x81\x02hi":
                raise RuntimeError(echo)
            close = struct.pack(">H", 1000)
            writer.write(bytes([0x88, 0x82]) + mask + bytes(b ^ mask[i] for i, b in enumerate(close)))
            await reader.readexactly(4)
        finally:
            writer.close()

    async def client():
        while left[0] > 0:
            left[0] -= 1
            try:
                await asyncio.wait_for(one(), 10)
            except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, RuntimeError) as e:
                why = f"{type(e).__name__} {getattr(e, 'errno', '') or ''}".strip()
                failed[why] = failed.get(why, 0) + 1
            phase["progress"] += 1

    await asyncio.gather(*(client() for _ in range(64)))
    return phase["progress"], failed


def fanout_phase():
    counted("channels", "ferricorn_channel_messages_delivered_total")
    delivered = 0
    while delivered < args.deliveries:
        out = subprocess.run(
            [args.fanout, f"ws://127.0.0.1:{args.port}", "1000", "10", "1000", "20", str(args.master)],
            capture_output=True, text=True, check=True).stdout
        m = re.search(r"delivered[ =:]+(\d+)", out)
        if not m:
            raise SystemExit(f"fanout-load said: {out}")
        delivered += int(m.group(1))
    return delivered


def recycle_phase():
    """--max-requests set by a reload (the config file, then HUP), and wrk
    until the workers have been recycled N times: the supervisor must not
    grow with the recycles."""
    phase.update(name="reload", progress=0, counter=None)
    with open(args.config, "w") as f:
        f.write(f"max_requests = {args.recycle_every}\n")
    os.kill(args.master, 1)  # SIGHUP
    time.sleep(3)
    counted("recycle", "ferricorn_worker_restarts_total")
    while phase["progress"] < args.recycles:
        subprocess.run([args.wrk, "-t1", "-c32", "-d10s", f"http://127.0.0.1:{args.port}/"],
                       capture_output=True, check=True)
    return int(phase["progress"])


def slope(points):
    """Least-squares slope of (x, y) points."""
    n = len(points)
    if n < 3:
        return float("nan")
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else float("nan")


def judge(name, unit, per):
    s = [x for x in samples if x["phase"] == name]
    if len(s) < 3:
        return {"samples": len(s)}
    top = s[-1]["progress"]
    after = [x for x in s if x["progress"] >= top * 0.1]
    out = {"samples": len(s), "amount": top}
    for key in ("sup_rss", "sup_fds", "shm", "shm_cells", "shm_groups"):
        pts = [(x["progress"] / per, x[key]) for x in after]
        out[key] = {"after_warmup": after[0][key], "end": after[-1][key],
                    "slope_per_" + unit: round(slope(pts), 3)}
    wrss = [(x["progress"] / per, sum(w["rss"] for w in x["workers"].values())) for x in after]
    wfds = [(x["progress"] / per, sum(w["fds"] for w in x["workers"].values())) for x in after]
    out["workers_rss"] = {"after_warmup": wrss[0][1], "end": wrss[-1][1],
                          "slope_per_" + unit: round(slope(wrss), 3)}
    out["workers_fds"] = {"after_warmup": wfds[0][1], "end": wfds[-1][1],
                          "slope_per_" + unit: round(slope(wfds), 3)}
    return out


def worker_lives():
    """Each worker's RSS over its own life in the HTTP phase, after its own
    first 10%: KiB per million requests it served (from the phase's total,
    shared between the workers)."""
    lives = {}
    for x in samples:
        if x["phase"] != "http":
            continue
        for pid, w in x["workers"].items():
            lives.setdefault(pid, []).append((x["progress"], w["rss"]))
    out = []
    for pid, pts in lives.items():
        if len(pts) < 10:
            continue
        first = pts[0][0]
        span = pts[-1][0] - first
        kept = [(p / 1e6, r) for p, r in pts if p - first >= span * 0.1]
        out.append({"pid": pid, "samples": len(pts), "rss_start": kept[0][1], "rss_end": kept[-1][1],
                    "slope_kib_per_million_requests": round(slope(kept), 2)})
    return out


def main():
    threading.Thread(target=sampler, daemon=True).start()
    time.sleep(2.5)
    start = time.monotonic()
    served = http_phase()
    connects, ws_failed = asyncio.run(ws_churn())
    delivered = fanout_phase()
    recycles = recycle_phase()
    phase.update(name="end", progress=0, counter=None)
    time.sleep(2.5)
    done.set()
    if args.samples:
        with open(args.samples, "w") as f:
            for x in samples:
                f.write(json.dumps(x) + "\n")
    report = {
        "seconds": round(time.monotonic() - start),
        "requests": served, "connects": connects, "connect_failures": ws_failed,
        "deliveries": delivered, "recycles": recycles,
        "http": judge("http", "million_requests", 1e6),
        "websocket": judge("websocket", "100k_connects", 1e5),
        "channels": judge("channels", "million_deliveries", 1e6),
        "recycle": judge("recycle", "10_recycles", 10),
        "worker_lives": worker_lives(),
        "first": {k: samples[0][k] for k in ("sup_rss", "sup_fds", "shm", "shm_cells")},
        "last": {k: samples[-1][k] for k in ("sup_rss", "sup_fds", "shm", "shm_cells")},
    }
    print(json.dumps(report))
    for name in ("http", "websocket", "channels", "recycle"):
        r = report[name]
        if "sup_rss" not in r:
            print(f"{name:9} too short to judge ({r['samples']} samples)", file=sys.stderr)
            continue
        for key in ("sup_rss", "sup_fds", "shm", "shm_cells", "shm_groups", "workers_rss", "workers_fds"):
            v = r[key]
            sl = [val for k, val in v.items() if k.startswith("slope")][0]
            unit = [k for k in v if k.startswith("slope")][0][len("slope_per_"):]
            print(f"{name:9} {key:12} {v['after_warmup']:>8} -> {v['end']:>8}  slope {sl:>8} per {unit}",
                  file=sys.stderr)
    for life in report["worker_lives"]:
        print(f"worker {life['pid']}: {life['rss_start']} -> {life['rss_end']} KiB over its life, "
              f"{life['slope_kib_per_million_requests']} KiB per million requests", file=sys.stderr)


main()
