#!/usr/bin/env bash
# The cost of metrics: metrics off (--metrics-path "") against on (the
# default), side by side, taking turns (see benches/ab.sh).
#
#   benches/metrics.sh              # or: just bench-metrics
set -euo pipefail
cd "$(dirname "$0")/.."
exec bash benches/ab.sh "metrics off" --metrics-path "" -- "metrics on"
