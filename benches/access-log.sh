#!/usr/bin/env bash
# The cost of the access log: off against on (Gunicorn's format, to a
# file), side by side, taking turns (see benches/ab.sh).
#
#   benches/access-log.sh           # or: just bench-access-log
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
bash benches/ab.sh "access log off" -- "access log on" --access-logfile "$WORK/access.log"
echo "($(wc -l <"$WORK/access.log") access log lines written)"
