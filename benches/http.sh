#!/usr/bin/env bash
# Throughput, latency and memory of the demo server under wrk.
#
# Builds ferricorn in release, starts it with 2 workers on a free loopback
# port, runs a bounded wrk load (default 1 thread, 64 connections, 10 s)
# against / and /json, and prints requests/s, p50 and p99 latency, and the
# RSS of the supervisor and of each worker, idle and after the load.
#
#   benches/http.sh                 # or: just bench
#   DURATION=30s CONNECTIONS=128 benches/http.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-1}
WORKERS=${WORKERS:-2}

source benches/lib.sh
need wrk wrk
cargo build --release --quiet --bin ferricorn
BIN=${CARGO_TARGET_DIR:-target}/release/ferricorn

PORT=$(free_port)
LOG=$(mktemp)
"$BIN" -w "$WORKERS" -b "127.0.0.1:$PORT" --log-level warning 2>"$LOG" &
PID=$!
trap 'kill -TERM $PID 2>/dev/null; wait $PID 2>/dev/null; rm -f "$LOG"' EXIT

wait_up "$PORT" /readyz || { cat "$LOG" >&2; exit 1; }

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
workers() { for p in /proc/[0-9]*; do
    [ "$(awk '{print $4}' "$p/stat" 2>/dev/null)" = "$PID" ] && basename "$p"; done; }
memory() {
    local line="supervisor $(rss_kib $PID) KiB"
    for w in $(workers); do line="$line, worker $(rss_kib "$w") KiB"; done
    echo "$line"
}

echo "ferricorn $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $WORKERS workers, wrk -t$THREADS -c$CONNECTIONS -d$DURATION, $(nproc) CPUs"
echo "idle RSS: $(memory)"
printf '%-8s %12s %10s %10s\n' path req/s p50 p99
for path in / /json; do
    out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "http://127.0.0.1:$PORT$path")
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    errors=$(awk '/Non-2xx|Socket errors/' <<<"$out")
    printf '%-8s %12s %10s %10s\n' "$path" "$rps" "$p50" "$p99"
    [ -z "$errors" ] || echo "  $errors"
done
echo "RSS after load: $(memory)"
# How evenly the kernel and the accept balancing spread the load: each
# worker's request count, read through /worker on fresh connections.
python3 - "$PORT" <<'PY'
import json, socket, sys
seen = {}
for _ in range(200):
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
    s.sendall(b"GET /worker HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    w = json.loads(data.split(b"\r\n\r\n", 1)[1])
    seen[w["index"]] = w["requests"]
total = sum(seen.values()) or 1
print("requests per worker:", ", ".join(f"worker {i} {n} ({100 * n / total:.0f}%)" for i, n in sorted(seen.items())))
PY
