#!/usr/bin/env bash
# The cost of one setting: two ferricorn servers side by side, 2 workers
# each, A started without the setting and B with it; the same wrk load
# against / taking turns for ROUNDS rounds. Prints the median req/s of each
# and B's cost. Taking turns keeps the noise of a shared machine out of the
# comparison. benches/metrics.sh and benches/access-log.sh call it.
#
#   benches/ab.sh "NAME A" [ARGS A...] -- "NAME B" [ARGS B...]
#   DURATION=5s ROUNDS=5 CONNECTIONS=64 benches/ab.sh ...
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-5s}
ROUNDS=${ROUNDS:-5}
CONNECTIONS=${CONNECTIONS:-64}

NAME_A=$1; shift
ARGS_A=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do ARGS_A+=("$1"); shift; done
[ $# -ge 2 ] || { echo "usage: $0 NAME_A [ARGS...] -- NAME_B [ARGS...]" >&2; exit 2; }
shift
NAME_B=$1; shift
ARGS_B=("$@")

source benches/lib.sh
need wrk wrk
cargo build --release --quiet --bin ferricorn
BIN=${CARGO_TARGET_DIR:-target}/release/ferricorn
PIDS=()
trap 'kill -TERM "${PIDS[@]}" 2>/dev/null; wait 2>/dev/null' EXIT

start() { # PORT ARGS...
    local port=$1; shift
    "$BIN" -w 2 -b "127.0.0.1:$port" --log-level warning "$@" 2>/dev/null &
    PIDS+=($!)
    wait_up "$port" /readyz
}
A=$(free_port); start "$A" "${ARGS_A[@]}"
B=$(free_port); start "$B" "${ARGS_B[@]}"
sleep 1
a=() b=()
for round in $(seq "$ROUNDS"); do
    for which in A B; do
        port=$A name=$NAME_A
        [ "$which" = B ] && port=$B name=$NAME_B
        rps=$(wrk -t1 -c"$CONNECTIONS" -d"$DURATION" "http://127.0.0.1:$port/" | awk '/^Requests\/sec:/ {print int($2)}')
        echo "round $round $name: $rps req/s" >&2
        if [ "$which" = A ]; then a+=("$rps"); else b+=("$rps"); fi
    done
done
python3 - "$NAME_A" "${a[*]}" "$NAME_B" "${b[*]}" <<'PY'
import statistics, sys
name_a, name_b = sys.argv[1], sys.argv[3]
a = statistics.median(int(x) for x in sys.argv[2].split())
b = statistics.median(int(x) for x in sys.argv[4].split())
width = max(len(name_a), len(name_b)) + 1
print(f"{name_a + ':':<{width}} {a:.0f} req/s (median)")
print(f"{name_b + ':':<{width}} {b:.0f} req/s (median)")
print(f"cost of {name_b}: {100 * (1 - b / a):.1f}% of req/s")
PY
