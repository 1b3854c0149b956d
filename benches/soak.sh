#!/usr/bin/env bash
# The soak (`just bench-soak`): one ferricorn server (2 workers, recycled
# every SOAK_MAX_REQUESTS requests, default 1,000,000) through 10 million
# HTTP requests (wrk), 200,000 WebSocket connects and disconnects, and 10
# million channel-layer deliveries (benches/baselines' fanout-load), while
# benches/soak.py samples the supervisor's and every worker's RSS and open
# fds and the shared memory's resident size, and reports each one's value
# after warm-up, at the end, and its slope. SOAK_REQUESTS, SOAK_CONNECTS and
# SOAK_DELIVERIES scale the run down for a quick look. Installs wrk if
# missing.
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/lib.sh
need wrk wrk
cargo build --release --quiet --bin ferricorn
(cd benches/baselines && cargo build --release --quiet --bin fanout-load)
ulimit -n 30000 2>/dev/null || ulimit -n "$(ulimit -Hn)"

dir=$(mktemp -d)
port=$(free_port)
target/release/ferricorn -w 2 -b "127.0.0.1:$port" --log-level warning \
    --max-requests "${SOAK_MAX_REQUESTS:-1000000}" --worker-connections 5000 \
    >"$dir/server.log" 2>&1 &
master=$!
trap 'kill -TERM $master 2>/dev/null; wait $master 2>/dev/null; rm -rf "$dir"' EXIT
wait_up "$port" /readyz 300
python3 benches/soak.py --port "$port" --master "$master" --wrk wrk \
    --fanout benches/baselines/target/release/fanout-load \
    --requests "${SOAK_REQUESTS:-10000000}" --connects "${SOAK_CONNECTS:-200000}" \
    --deliveries "${SOAK_DELIVERIES:-10000000}" >"$dir/report.json"
cat "$dir/report.json"
