#!/usr/bin/env bash
# The cost of the access log: the same wrk load against / with the access
# log off and on (Gunicorn's format, to a file), best of ROUNDS rounds each.
#
#   benches/access-log.sh           # DURATION=5s ROUNDS=3 CONNECTIONS=64
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-5s}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-64}
source benches/lib.sh
need wrk wrk
cargo build --release --quiet --bin ferricorn
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

run() {
    local port best=0
    port=$(free_port)
    "${CARGO_TARGET_DIR:-target}/release/ferricorn" -w 2 -b "127.0.0.1:$port" --log-level warning "$@" 2>/dev/null &
    local pid=$!
    wait_up "$port" /readyz
    for _ in $(seq "$ROUNDS"); do
        local rps
        rps=$(wrk -t1 -c"$CONNECTIONS" -d"$DURATION" "http://127.0.0.1:$port/" | awk '/^Requests\/sec:/ {print int($2)}')
        [ "$rps" -gt "$best" ] && best=$rps
    done
    kill -TERM $pid; wait $pid 2>/dev/null || true
    echo "$best"
}

off=$(run)
on=$(run --access-logfile "$WORK/access.log")
lines=$(wc -l <"$WORK/access.log")
echo "access log off: $off req/s"
echo "access log on:  $on req/s ($lines lines written)"
python3 -c "print(f'cost: {100 * (1 - $on / $off):.1f}% of req/s')"
