#!/usr/bin/env bash
# Instructions per request and per WebSocket message, counted by valgrind's
# callgrind: unlike req/s on a shared machine, the count barely moves from
# run to run (about 1%), so it shows what a change to the request path
# saves.
#
# For each case, one serving process runs under callgrind (ferricorn with
# one worker, the hyper baseline with one thread), a fixed-time load drives
# it, and the process's instructions at exit, less those of the same
# server started and stopped with no load, are divided by the requests (or
# messages) it served:
#   - ferricorn and hyper: `wrk -t1 -c16 -d5s` against `/`;
#   - ferricorn's /ws/echo: ws-load, 16 connections for 5 s; also given
#     without memset, which callgrind overstates (it counts each step of a
#     `rep stosb`).
#
#   benches/instructions.sh     # needs valgrind (apt-get install valgrind)
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=${CARGO_TARGET_DIR:-$PWD/target}

source benches/lib.sh
need wrk wrk
need valgrind valgrind
cargo build --release --quiet --bin ferricorn
(cd benches/baselines && CARGO_TARGET_DIR="$TARGET" cargo build --release --quiet)
BIN=$TARGET/release
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# run NAME LOAD SERVER... : the serving process's callgrind totals,
# "instructions memset", after LOAD (a command given the port) has run.
run() {
    local name=$1 load=$2 port pid serving
    shift 2
    port=$(free_port)
    valgrind --tool=callgrind --callgrind-out-file="$WORK/$name.%p" \
        "${@/@PORT@/$port}" >"$WORK/$name.log" 2>&1 &
    pid=$!
    wait_up "$port" / 600
    serving=$(pgrep -P "$pid" | head -1 || true)
    [ -n "$serving" ] || serving=$pid
    $load "$port" >"$WORK/$name.load"
    kill -TERM "$pid"
    wait "$pid" || true
    callgrind_annotate "$WORK/$name.$serving" 2>/dev/null | awk '
        /PROGRAM TOTALS/ { t = $1; gsub(",", "", t) }
        /memset/ && $1 ~ /^[0-9,]+$/ && m == "" { m = $1; gsub(",", "", m) }
        END { print t, m + 0 }'
}
idle() { :; }
http() { wrk -t1 -c16 -d5s "http://127.0.0.1:$1/"; }
ws() { "$BIN/ws-load" "ws://127.0.0.1:$1/ws/echo" 16 5; }

ferricorn=("$BIN/ferricorn" -w 1 -b "127.0.0.1:@PORT@" --log-level warning)
hyper=("$BIN/hyper" "127.0.0.1:@PORT@" 1)

read -r f0 fm0 < <(run ferricorn-idle idle "${ferricorn[@]}")
read -r f1 _ < <(run ferricorn-http http "${ferricorn[@]}")
n=$(awk '/requests in/ {print $1}' "$WORK/ferricorn-http.load")
echo "ferricorn: $(( (f1 - f0) / n )) instructions per request ($n requests)"

read -r h0 _ < <(run hyper-idle idle "${hyper[@]}")
read -r h1 _ < <(run hyper-http http "${hyper[@]}")
n=$(awk '/requests in/ {print $1}' "$WORK/hyper-http.load")
echo "hyper:     $(( (h1 - h0) / n )) instructions per request ($n requests)"

read -r w1 wm1 < <(run ferricorn-ws ws "${ferricorn[@]}")
n=$(awk '{printf "%d", $2 * 5}' "$WORK/ferricorn-ws.load")
echo "ferricorn /ws/echo: $(( (w1 - f0) / n )) instructions per message," \
    "$(( (w1 - wm1 - f0 + fm0) / n )) without memset ($n messages)"
