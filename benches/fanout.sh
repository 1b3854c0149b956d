#!/usr/bin/env bash
# The channel layer's fan-out (`just bench-fanout`): ferricorn's demo chat
# (2 workers, the memory layer) beside the in-process limit, a plain
# tokio-tungstenite broadcast server in one process (2 threads,
# benches/baselines/src/bin/ws-broadcast.rs), under the same load client
# (benches/baselines/src/bin/fanout-load.rs):
#
# 1. 1,000 members in one room, 100 publishes/s (100,000 deliveries/s);
# 2. the highest publish rate, from 100/s up, whose p99 stays under
#    100 ms with no loss;
# 3. 10,000 members in 100 rooms, 10 publishes/s: memory per member.
#
# With FANOUT_DJANGO=1, also Django Channels with channels_redis on Uvicorn
# (2 workers; benches/django_channels/chat.py, the same wire format), the
# stack the deployments it replaces run: Django, channels, channels_redis
# and uvicorn from PyPI into target/django-venv, and Debian's redis-server,
# started on a free loopback port (its CPU counted with the server's).
#
# Each line: published, delivered, loss, delivered/s, latency from publish
# to receipt p50/p99/p99.9, server CPU µs per delivered message (/proc),
# server RSS per member. The load client shares the machine's CPUs, so
# absolute latencies are judged against the in-process limit's in the same
# run. FANOUT_SECONDS (default 5) sets each step's length; SERVER_CPUS and
# LOAD_CPUS (taskset lists, say 1 and 0) pin the server and the load client
# apart, so that neither waits behind the other for a CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/lib.sh
SECONDS_EACH=${FANOUT_SECONDS:-5}
SERVER_CPUS=${SERVER_CPUS:-}
LOAD_CPUS=${LOAD_CPUS:-}

# pinned CPUS COMMAND...: becomes COMMAND on CPUS, if given (run it in
# the background, so that $! is the command's own pid).
pinned() {
    local cpus=$1
    shift
    if [ -n "$cpus" ]; then exec taskset -c "$cpus" "$@"; else exec "$@"; fi
}
ulimit -n 30000 2>/dev/null || ulimit -n "$(ulimit -Hn)"

cargo build --release --quiet --bin ferricorn
(cd benches/baselines && cargo build --release --quiet --bin ws-broadcast --bin fanout-load)
LOAD=benches/baselines/target/release/fanout-load

# start NAME: starts the server, sets PORT and PIDS (all its processes).
start() {
    PORT=$(free_port)
    case "$1" in
        ferricorn)
            pinned "$SERVER_CPUS" ./target/release/ferricorn -w 2 -b "127.0.0.1:$PORT" \
                --log-level warning --worker-connections 10000 &
            ;;
        broadcast)
            pinned "$SERVER_CPUS" benches/baselines/target/release/ws-broadcast "127.0.0.1:$PORT" 2 &
            ;;
        django)
            REDIS_PORT=$(free_port)
            redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no >/dev/null &
            REDIS=$!
            sleep 0.5
            (cd benches/django_channels && REDIS_URL="redis://127.0.0.1:$REDIS_PORT" \
                pinned "$SERVER_CPUS" ../../target/django-venv/bin/uvicorn chat:application \
                --workers 2 --port "$PORT" --log-level warning) &
            ;;
    esac
    SERVER=$!
    for _ in $(seq 100); do
        python3 -c "import socket; socket.create_connection(('127.0.0.1', $PORT), timeout=1)" 2>/dev/null && break
        sleep 0.1
    done
    sleep 0.5
    PIDS=$(echo "$SERVER" $(pgrep -P "$SERVER" || true) | tr ' ' ',')
    if [ "$1" = django ]; then
        # uvicorn's workers start after it listens; Redis counts too.
        sleep 2
        PIDS=$(echo "$SERVER" $(pgrep -P "$SERVER" || true) "$REDIS" | tr ' ' ',')
    fi
}

stop() {
    kill -TERM "$SERVER" 2>/dev/null || true
    pkill -TERM -P "$SERVER" 2>/dev/null || true
    wait "$SERVER" 2>/dev/null || true
    if [ -n "${REDIS:-}" ]; then
        kill "$REDIS" 2>/dev/null || true
        wait "$REDIS" 2>/dev/null || true
        REDIS=
    fi
}

# run NAME MEMBERS ROOMS RATE: one load step against a fresh server.
run() {
    start "$1"
    printf '%-10s ' "$1"
    (pinned "$LOAD_CPUS" timeout 300 "$LOAD" "ws://127.0.0.1:$PORT" "$2" "$3" "$4" "$SECONDS_EACH" "$PIDS") ||
        echo "load failed"
    stop
}

echo "## 1,000 members, one room, 100 publishes/s"
for s in ferricorn broadcast; do run "$s" 1000 1 100; done

echo "## the highest rate with p99 under 100 ms and no loss (1,000 members, one room)"
for s in ferricorn broadcast; do
    for rate in 100 125 150 175 200 250 300 400; do
        line=$(run "$s" 1000 1 "$rate")
        echo "$line"
        p99=$(sed -n 's/.*p99_ms=\([0-9.]*\).*/\1/p' <<<"$line")
        loss=$(sed -n 's/.*loss=\([0-9.]*\)%.*/\1/p' <<<"$line")
        if [ -z "$p99" ] || python3 -c "import sys; sys.exit(0 if float('$p99') > 100 or float('$loss') > 0 else 1)"; then
            break
        fi
    done
done

echo "## 10,000 members in 100 rooms, 10 publishes/s: memory per member"
for s in ferricorn broadcast; do run "$s" 10000 100 10; done

if [ "${FANOUT_DJANGO:-}" = 1 ]; then
    need redis-server redis-server
    # The package may start a system service; this bench starts its own.
    (service redis-server stop || systemctl stop redis-server) >/dev/null 2>&1 || true
    if [ ! -x target/django-venv/bin/uvicorn ]; then
        python3 -m venv target/django-venv
        target/django-venv/bin/pip install -q django channels channels_redis "uvicorn[standard]"
    fi
    echo "## Django Channels (channels_redis, Uvicorn, 2 workers), 1,000 members, one room"
    for rate in 1 2 5 10 100; do run django 1000 1 "$rate"; done
fi
