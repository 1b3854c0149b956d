#!/usr/bin/env bash
# Chaos under load (`just bench-chaos`): ferricorn's demo (CHAOS_WORKERS,
# default 3, the channel layer on Redis) under HTTP and WebSocket load
# (benches/chaos.py) for CHAOS_SECONDS (default 180), while workers are
# killed with SIGKILL and SIGSEGV, the supervisor gets HUP, TTIN, TTOU,
# USR2 and USR1, and Redis is killed and restarted, each at random (mean
# CHAOS_EVERY seconds apart, default 1.5; CHAOS_SEED picks the sequence).
#
# It reports what was served, what failed and whether each failure was in
# flight on a killed worker (the one rule), and then checks, once the load
# has stopped and the last replacement is ready:
# - the worker processes are back to the number the settings and the
#   signals set (TTIN and TTOU change it; HUP and USR2 read the settings
#   again, as Gunicorn's HUP does);
# - the shared memory names exactly those workers (no cell of a dead one);
# - the supervisor holds as many file descriptors as before the chaos;
# - the channel layer is connected to Redis again.
# Exits 1 when any check fails or any failure breaks the rule.
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/lib.sh
SECONDS_TOTAL=${CHAOS_SECONDS:-180}
WORKERS=${CHAOS_WORKERS:-3}
need redis-server redis-server
need redis-cli redis-tools
(service redis-server stop || systemctl stop redis-server) >/dev/null 2>&1 || true
cargo build --release --quiet --bin ferricorn
ulimit -n 10000 2>/dev/null || true

dir=$(mktemp -d)
redis_port=$(free_port)
redis-server --port "$redis_port" --save '' --appendonly no >"$dir/redis.log" 2>&1 &
port=$(free_port)
target/release/ferricorn -w "$WORKERS" -b "127.0.0.1:$port" --graceful-timeout 5 \
    --channel-layer "redis://127.0.0.1:$redis_port" --log-level warning \
    --pid "$dir/ferricorn.pid" >"$dir/server.log" 2>&1 &
master=$!
cleanup() {
    kill -TERM "$master" 2>/dev/null || true
    wait "$master" 2>/dev/null || true
    redis-cli -p "$redis_port" shutdown nosave >/dev/null 2>&1 || true
    pkill -f "redis-server.*:$redis_port" 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT
wait_up "$port" /readyz 300
fds() { ls "/proc/$master/fd" | wc -l; }
metrics() { curl -s "http://127.0.0.1:$port/metrics"; }
fds_before=$(fds)

python3 benches/chaos.py --port "$port" --master "$master" --seconds "$SECONDS_TOTAL" \
    --every "${CHAOS_EVERY:-1.5}" --seed "${CHAOS_SEED:-1}" --redis-port "$redis_port" \
    --min-workers 2 --max-workers 4 >"$dir/report.json"

# Settle: the number of workers the signals asked for, all ready.
desired=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["desired_workers"])' <"$dir/report.json")
children() { awk -v m="$master" '$4 == m {print $1}' /proc/[0-9]*/stat 2>/dev/null | sort -n; }
for _ in $(seq 300); do
    ready=$(metrics | awk '/^ferricorn_workers_ready /{print $2}')
    [ "$(children | wc -l)" = "$desired" ] && [ "${ready:-0}" = "$desired" ] && break
    sleep 0.1
done
redis_up=0
for _ in $(seq 100); do
    redis_up=$(metrics | awk '/^ferricorn_channel_broker_connected /{print $2}')
    [ "$redis_up" = 1 ] && break
    sleep 0.1
done
workers=$(children | tr '\n' ' ')
in_shm=$(metrics | sed -n 's/^ferricorn_worker_heartbeat_age_seconds{.*pid="\([0-9]*\)".*/\1/p' | sort -n | tr '\n' ' ')
fds_after=$(fds)
reconnects=$(metrics | awk '/^ferricorn_channel_broker_reconnects_total /{print $2}')

python3 - "$dir/report.json" "$desired" "$workers" "$in_shm" "$fds_before" "$fds_after" "$redis_up" "$reconnects" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
desired, workers, in_shm = int(sys.argv[2]), sys.argv[3].split(), sys.argv[4].split()
fds_before, fds_after, redis_up, reconnects = sys.argv[5:9]
kinds = {}
for _, what in r["events"]:
    k = what.split()[0]
    kinds[k] = kinds.get(k, 0) + 1
c = r["counts"]
print(f"chaos: {r['seconds']} s, {len(r['events'])} events: " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())))
print(f"served: {c['http_ok']} HTTP requests; {c['ws_connects']} WebSocket connects, "
      f"{c['ws_echoes']} echoes, {c['ws_clean_closes']} closed by a draining worker (1001, 1012)")
print(f"failed in flight on a killed worker: {r['failed_on_killed_workers']} "
      f"(of {r['killed']} workers killed; {r['of_them_before_naming_the_worker']} on a new "
      f"connection within 2 s of a kill, before it named its worker)")
print(f"retried, sent as a retiring worker closed its idle connection: "
      f"{r['retried_idle_connections_of_retiring_workers']}")
print(f"failures outside the rule: {len(r['violations'])}")
for v in r["violations"][:20]:
    print("  ", v)
checks = [
    (f"workers: {len(workers)} (the signals set {desired})", len(workers) == desired),
    (f"shared memory names the live workers: {sorted(in_shm) == sorted(workers)} ({' '.join(in_shm)})",
     sorted(in_shm) == sorted(workers)),
    (f"supervisor fds: {fds_before} before, {fds_after} after", fds_before == fds_after),
    (f"channel layer connected to Redis: {redis_up} (reconnects {reconnects})", redis_up == "1"),
]
for line, ok in checks:
    print(("ok   " if ok else "FAIL ") + line)
sys.exit(0 if all(ok for _, ok in checks) and not r["violations"] else 1)
PY
