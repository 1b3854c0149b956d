# ferricorn's everyday commands (https://github.com/casey/just).

# Serve the demo app on 127.0.0.1:8000.
run *ARGS:
    cargo run --release -- {{ARGS}}

# Every test, unit and end-to-end.
test:
    cargo test

# The README's examples, built as a crate of their own.
readme:
    bash tests/readme/check.sh

# The chat page in a real browser (headless Chromium, Selenium).
browser:
    bash tests/browser/run.sh

# What CI runs.
ci:
    bash .ci/run

# Format and lint.
lint:
    cargo fmt --all
    cargo clippy --all-targets -- -D warnings

# Throughput, latency and memory under wrk (installs wrk if missing).
bench:
    bash benches/http.sh

# WebSocket conformance: the Autobahn TestSuite against /ws/echo.
autobahn:
    bash tests/autobahn/run.sh

# The cost of the access log, on against off.
bench-access-log:
    bash benches/access-log.sh

# ferricorn beside actix-web, hyper (multi-thread, and one runtime per thread), nginx and tokio-tungstenite (installs wrk and nginx if missing).
bench-compare:
    bash benches/compare.sh

# Instructions per request and per WebSocket message, under callgrind (needs valgrind).
bench-instructions:
    bash benches/instructions.sh

# The channel layer's fan-out beside the in-process limit (a tokio-tungstenite broadcast server).
bench-fanout:
    bash benches/fanout.sh

# The cost of metrics, on against off.
bench-metrics:
    bash benches/metrics.sh

# HTTPS beside nginx with the same certificate: HTTP/1.1 and h2 req/s, new TLS handshakes/s, p99 (installs wrk, nginx and h2load if missing).
bench-tls:
    bash benches/tls.sh

# Every fuzz target for an hour (or SECONDS), FUZZ_JOBS at a time; see docs/fuzzing.md.
fuzz SECONDS="3600" *TARGETS:
    bash fuzz/run.sh {{SECONDS}} {{TARGETS}}

# Kills, signals and a Redis restart at random under HTTP and WebSocket load; checks that only what was in flight on a killed worker failed, and that no worker, shared-memory cell or supervisor fd leaked.
bench-chaos:
    bash benches/chaos.sh

# 10 million requests, 200,000 WebSocket connects and 10 million channel deliveries, with memory, fds and shared memory sampled for their slopes.
bench-soak:
    bash benches/soak.sh
