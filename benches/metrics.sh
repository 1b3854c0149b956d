#!/usr/bin/env bash
# The cost of metrics: two servers side by side, one with metrics on (the
# default) and one with them off (--metrics-path ""), 2 workers each, the
# same wrk load against / taking turns for ROUNDS rounds; prints the median
# req/s of each and the difference. Taking turns keeps the noise of a shared
# machine out of the comparison.
#
#   benches/metrics.sh              # DURATION=5s ROUNDS=5 CONNECTIONS=64
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-5s}
ROUNDS=${ROUNDS:-5}
CONNECTIONS=${CONNECTIONS:-64}
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
ON=$(free_port); start "$ON"
OFF=$(free_port); start "$OFF" --metrics-path ""
sleep 1
on=() off=()
for round in $(seq "$ROUNDS"); do
    for which in on off; do
        port=$ON; [ "$which" = off ] && port=$OFF
        rps=$(wrk -t1 -c"$CONNECTIONS" -d"$DURATION" "http://127.0.0.1:$port/" | awk '/^Requests\/sec:/ {print int($2)}')
        echo "round $round metrics $which: $rps req/s" >&2
        if [ "$which" = on ]; then on+=("$rps"); else off+=("$rps"); fi
    done
done
python3 - "${on[*]}" "${off[*]}" <<'PY'
import statistics, sys
on = statistics.median(int(x) for x in sys.argv[1].split())
off = statistics.median(int(x) for x in sys.argv[2].split())
print(f"metrics on:  {on:.0f} req/s (median)")
print(f"metrics off: {off:.0f} req/s (median)")
print(f"cost: {100 * (1 - on / off):.1f}% of req/s")
PY
