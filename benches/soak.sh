#!/usr/bin/env bash
# The soak (`just bench-soak`): one ferricorn server (2 workers) through
# 10 million HTTP requests (wrk), 200,000 WebSocket connects and
# disconnects, and 10 million channel-layer deliveries (benches/baselines'
# fanout-load); then a reload sets --max-requests 50,000 and wrk goes on
# until the workers have been recycled 40 times. benches/soak.py samples the
# supervisor's and every worker's RSS and open fds, and the shared memory
# (its resident size, the worker cells in use, the groups in the workers'
# tables), and reports each one's value after warm-up, at the end, and its
# slope (every sample in target/soak-samples.jsonl). SOAK_REQUESTS,
# SOAK_CONNECTS, SOAK_DELIVERIES and SOAK_RECYCLES scale the run down for a
# quick look. Installs wrk if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/lib.sh
need wrk wrk
cargo build --release --quiet --bin ferricorn
(cd benches/baselines && cargo build --release --quiet --bin fanout-load)
ulimit -n 30000 2>/dev/null || ulimit -n "$(ulimit -Hn)"

dir=$(mktemp -d)
port=$(free_port)
: >"$dir/soak.toml"
target/release/ferricorn -w 2 -b "127.0.0.1:$port" --log-level warning -c "$dir/soak.toml" \
    --worker-connections 5000 >"$dir/server.log" 2>&1 &
master=$!
trap 'kill -TERM $master 2>/dev/null; wait $master 2>/dev/null; rm -rf "$dir"' EXIT
wait_up "$port" /readyz 300
python3 benches/soak.py --port "$port" --master "$master" --wrk wrk \
    --fanout benches/baselines/target/release/fanout-load \
    --requests "${SOAK_REQUESTS:-10000000}" --connects "${SOAK_CONNECTS:-200000}" \
    --deliveries "${SOAK_DELIVERIES:-10000000}" --recycles "${SOAK_RECYCLES:-40}" \
    --config "$dir/soak.toml" --samples target/soak-samples.jsonl >"$dir/report.json"
cat "$dir/report.json"
