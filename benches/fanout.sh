#!/usr/bin/env bash
# The channel layer's fan-out (`just bench-fanout`): ferricorn's demo chat
# (2 workers, the memory layer; and two servers of 1 worker each sharing
# one Redis, the members spread over both) beside the in-process limit, a
# plain tokio-tungstenite broadcast server in one process (2 threads,
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
# to receipt p50/p99/p99.9, server CPU µs per delivered message (/proc;
# Redis's CPU counted with the servers'), server RSS per member. For the
# Redis pair, also Redis's egress per publish (INFO stats'
# total_net_output_bytes) and the copies of each message that makes (one
# per server with members is the target), with the subscribers of the
# room's channel. The load client shares the machine's CPUs, so
# absolute latencies are judged against the in-process limit's in the same
# run. FANOUT_SECONDS (default 5) sets each step's length; SERVER_CPUS and
# LOAD_CPUS (taskset lists, say 1 and 0) pin the server and the load client
# apart, so that neither waits behind the other for a CPU. FANOUT_SERVERS
# (default "ferricorn redis broadcast") picks the servers, FANOUT_STEPS
# (default "1 2 3") the steps, and FANOUT_REPEAT (default 1) runs step 1
# that many times, the servers in turn, for a median on a noisy machine.
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/lib.sh
SECONDS_EACH=${FANOUT_SECONDS:-5}
SERVER_CPUS=${SERVER_CPUS:-}
LOAD_CPUS=${LOAD_CPUS:-}
SERVERS=${FANOUT_SERVERS:-ferricorn redis broadcast}
STEPS=${FANOUT_STEPS:-1 2 3}
REPEAT=${FANOUT_REPEAT:-1}

# pinned CPUS COMMAND...: becomes COMMAND on CPUS, if given (run it in
# the background, so that $! is the command's own pid).
pinned() {
    local cpus=$1
    shift
    if [ -n "$cpus" ]; then exec taskset -c "$cpus" "$@"; else exec "$@"; fi
}
ulimit -n 30000 2>/dev/null || ulimit -n "$(ulimit -Hn)"

need redis-server redis-server
need redis-cli redis-tools
# The package may start a system service; this bench starts its own.
(service redis-server stop || systemctl stop redis-server) >/dev/null 2>&1 || true
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
        redis)
            REDIS_PORT=$(free_port)
            redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no >/dev/null &
            REDIS=$!
            for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
            PORT2=$(free_port)
            pinned "$SERVER_CPUS" ./target/release/ferricorn -w 1 -b "127.0.0.1:$PORT2" \
                --log-level warning --worker-connections 10000 \
                --channel-layer "redis://127.0.0.1:$REDIS_PORT/0" &
            SERVER2=$!
            pinned "$SERVER_CPUS" ./target/release/ferricorn -w 1 -b "127.0.0.1:$PORT" \
                --log-level warning --worker-connections 10000 \
                --channel-layer "redis://127.0.0.1:$REDIS_PORT/0" &
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
    URL="ws://127.0.0.1:$PORT"
    if [ "$1" = redis ]; then
        PIDS=$(echo "$SERVER" $(pgrep -P "$SERVER" || true) "$SERVER2" $(pgrep -P "$SERVER2" || true) "$REDIS" | tr ' ' ',')
        URL="ws://127.0.0.1:$PORT,ws://127.0.0.1:$PORT2"
    fi
    if [ "$1" = django ]; then
        # uvicorn's workers start after it listens; Redis counts too.
        sleep 2
        PIDS=$(echo "$SERVER" $(pgrep -P "$SERVER" || true) "$REDIS" | tr ' ' ',')
    fi
}

stop() {
    for s in "$SERVER" ${SERVER2:-}; do
        kill -TERM "$s" 2>/dev/null || true
        pkill -TERM -P "$s" 2>/dev/null || true
        wait "$s" 2>/dev/null || true
    done
    SERVER2=
    if [ -n "${REDIS:-}" ]; then
        kill "$REDIS" 2>/dev/null || true
        wait "$REDIS" 2>/dev/null || true
        REDIS=
    fi
}

# egress: Redis's bytes sent so far.
egress() {
    redis-cli -p "$REDIS_PORT" info stats | sed -n 's/^total_net_output_bytes:\([0-9]*\).*/\1/p'
}

# wait_for FILE TEXT: until FILE holds TEXT (at most 300 s).
wait_for() {
    for _ in $(seq 3000); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# run NAME MEMBERS ROOMS RATE: one load step against a fresh server.
run() {
    start "$1"
    printf '%-10s ' "$1"
    local out err line
    out=$(mktemp)
    err=$(mktemp)
    pinned "$LOAD_CPUS" timeout 300 "$LOAD" "$URL" "$2" "$3" "$4" "$SECONDS_EACH" "$PIDS" >"$out" 2>"$err" &
    local load=$!
    if [ "$1" = redis ] && wait_for "$err" "window: open"; then
        local before subs after
        before=$(egress)
        subs=$(redis-cli -p "$REDIS_PORT" pubsub shardnumsub "ferricorn:0:g:$(python3 -c "
h = 0xcbf2_9ce4_8422_2325
for b in b'bench-0':
    h = ((h ^ b) * 0x100000001b3) % 2**64
print(f'{max(h, 1):016x}')")" | tail -1)
        wait_for "$err" "window: closed"
        after=$(egress)
    fi
    wait "$load" || true
    line=$(cat "$out")
    [ -n "$line" ] || line="load failed: $(tail -1 "$err")"
    if [ "$1" = redis ] && [ -n "${after:-}" ] && [ "${line#load failed}" = "$line" ]; then
        local bytes published size
        bytes=$((after - before))
        published=$(sed -n 's/.* published=\([0-9]*\).*/\1/p' <<<"$line")
        size=$(sed -n 's/.*message_bytes=\([0-9]*\).*/\1/p' <<<"$line")
        # One copy on the wire: the message, the layer's 40-byte header and
        # the group name, in a RESP3 push naming its 30-byte channel.
        line="$line redis_egress_bytes_per_publish=$((bytes / (published > 0 ? published : 1))) copies_per_publish=$(python3 -c "print(round($bytes / max($published, 1) / ($size + 40 + 7 + 70), 2))") room_subscribers=$subs"
    fi
    rm -f "$out" "$err"
    echo "$line"
    stop
}

if [[ " $STEPS " == *" 1 "* ]]; then
    echo "## 1,000 members, one room, 100 publishes/s"
    for _ in $(seq "$REPEAT"); do
        for s in $SERVERS; do run "$s" 1000 1 100; done
    done
fi

if [[ " $STEPS " == *" 2 "* ]]; then
    echo "## the highest rate with p99 under 100 ms and no loss (1,000 members, one room)"
    for s in $SERVERS; do
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
fi

if [[ " $STEPS " == *" 3 "* ]]; then
    echo "## 10,000 members in 100 rooms, 10 publishes/s: memory per member"
    for s in $SERVERS; do run "$s" 10000 100 10; done
fi

if [ "${FANOUT_DJANGO:-}" = 1 ]; then
    if [ ! -x target/django-venv/bin/uvicorn ]; then
        python3 -m venv target/django-venv
        target/django-venv/bin/pip install -q django channels channels_redis "uvicorn[standard]"
    fi
    echo "## Django Channels (channels_redis, Uvicorn, 2 workers), 1,000 members, one room"
    for rate in 1 2 5 10 100; do run django 1000 1 "$rate"; done
fi
