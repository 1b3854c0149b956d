#!/usr/bin/env bash
# WebSocket conformance: the Autobahn TestSuite (fuzzingclient) against the
# demo's /ws/echo, every case but the compression ones (12.*, 13.*: no
# permessage-deflate). Installs wstest in a Python 2.7 virtualenv on first
# use, builds ferricorn in release, runs the suite, prints the counts per
# behaviour, and exits 1 if any case failed.
#
#   tests/autobahn/run.sh            # or: just autobahn
set -euo pipefail
cd "$(dirname "$0")/../.."

PY2=${PY2:-/root/.pyenv/versions/2.7.18/bin/python2.7}
VENV=${AUTOBAHN_VENV:-$HOME/.cache/autobahn-py27}
if [ ! -x "$VENV/venv/bin/wstest" ]; then
    echo "installing the Autobahn TestSuite into $VENV" >&2
    "$PY2" -m pip install -q --target "$VENV/venvtool" virtualenv==16.7.12
    PYTHONPATH="$VENV/venvtool" "$PY2" -m virtualenv -q "$VENV/venv"
    "$VENV/venv/bin/pip" install -q autobahntestsuite==25.10.1
fi

cargo build --release --quiet --bin ferricorn
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
WORK=$(mktemp -d)
"${CARGO_TARGET_DIR:-target}/release/ferricorn" -w 1 -b "127.0.0.1:$PORT" --log-level warning --ws-max-size 16777216 2>"$WORK/server.log" &
PID=$!
trap 'kill -TERM $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 100); do
    python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$PORT),1)" 2>/dev/null && break
    sleep 0.1
done

cat >"$WORK/spec.json" <<JSON
{"outdir": "$WORK/reports", "servers": [{"agent": "ferricorn", "url": "ws://127.0.0.1:$PORT/ws/echo"}],
 "cases": ["*"], "exclude-cases": ["12.*", "13.*"], "exclude-agent-cases": {}}
JSON
(cd "$WORK" && timeout 900 "$VENV/venv/bin/wstest" -m fuzzingclient -s spec.json >"$WORK/wstest.log" 2>&1) || {
    echo "wstest did not finish; its log:" >&2; tail -20 "$WORK/wstest.log" >&2; exit 1; }

python3 - "$WORK/reports/index.json" <<'PY'
import collections, json, sys
cases = json.load(open(sys.argv[1]))["ferricorn"]
count = collections.Counter(c["behavior"] for c in cases.values())
failed = sorted((k for k, c in cases.items()
                 if c["behavior"] == "FAILED" or c["behaviorClose"] in ("FAILED", "UNCLEAN")),
                key=lambda k: [int(p) for p in k.split(".")])
print(f"Autobahn fuzzingclient against /ws/echo: {len(cases)} cases")
for b in ("OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED"):
    print(f"  {b:<14} {count.get(b, 0)}")
print(f"  close FAILED or UNCLEAN: {sum(1 for c in cases.values() if c['behaviorClose'] in ('FAILED', 'UNCLEAN'))}")
if failed:
    print("failed cases:", ", ".join(failed))
    sys.exit(1)
PY
