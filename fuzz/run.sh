#!/usr/bin/env bash
# Builds the fuzz targets and runs each for a while.
#
#   bash fuzz/run.sh [SECONDS] [TARGET...]     (default 20 s each, every target)
#
# FUZZ_JOBS=N runs N targets at a time (one per core is the most useful).
#
# libFuzzer through libfuzzer-sys, on the stable toolchain: RUSTFLAGS carry
# the SanitizerCoverage flags cargo-fuzz passes (no AddressSanitizer, which
# needs nightly; the parsers are safe Rust, where a bad index panics).
# Each target starts from its committed seeds (fuzz/seeds/TARGET) and keeps
# what it finds in target/fuzz/corpus/TARGET between runs. A crash ends
# that target's run, and the script fails once all have run; the input is
# saved under target/fuzz/artifacts/TARGET/;
# copy it into fuzz/seeds/TARGET to make it a regression test
# (fuzz/replay.rs replays every seed in `cargo test`). Prints one line per target: executions,
# seconds, CPU seconds, corpus size.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=($(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v ferricorn-fuzz))
fi
triple=$(rustc -vV | sed -n 's/^host: //p')
out=target/fuzz
# One line per target: name, executions, seconds, CPU seconds, corpus files.
line='%-18s %14s %8s %8s %8s\n'
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
cargo build --quiet --release --manifest-path fuzz/Cargo.toml --target "$triple" \
    --target-dir "$out" --bins
# One target's run; its line (or its crash) in $out/TARGET.result.
run_one() {
    local t=$1 corpus=$out/corpus/$1 artifacts=$out/artifacts/$1/ log=$out/$1.log
    rm -rf "$artifacts"
    mkdir -p "$corpus" "$artifacts"
    # The CPU seconds it had (user + system) go to the log's last line: with
    # more targets than cores at a time, they are what a run is worth.
    local TIMEFORMAT='cpu_seconds: %U %S'
    if { time "$out/$triple/release/$t" "$corpus" "fuzz/seeds/$t" -max_total_time="$seconds" \
        -max_len=8192 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$artifacts" >"$log" 2>&1; } 2>>"$log"; then
        local execs cpu
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
        cpu=$(awk '/^cpu_seconds:/ { printf "%.0f", $2 + $3 }' "$log")
        printf "$line" "$t" "$execs" "$seconds" "$cpu" "$(ls "$corpus" | wc -l)" >"$out/$t.result"
    else
        {
            echo "$t: a crash; its input ($artifacts) and the log:"
            ls "$artifacts"
            grep -v '^#' "$log" | grep -v '^ *[0-9]*: \|^ *at ' | tail -25
        } >"$out/$t.result"
        return 1
    fi
}
# FUZZ_JOBS targets at a time (default 1).
for t in "${targets[@]}"; do
    rm -f "$out/$t.result"
    run_one "$t" &
    while [ "$(jobs -rp | wc -l)" -ge "${FUZZ_JOBS:-1}" ]; do wait -n || true; done
done
wait || true
printf "$line" target executions seconds cpu corpus
status=0
for t in "${targets[@]}"; do
    cat "$out/$t.result"
    grep -q 'a crash' "$out/$t.result" && status=1
done
exit $status
