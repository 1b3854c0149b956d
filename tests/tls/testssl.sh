#!/usr/bin/env bash
# testssl.sh (Debian's package) against a ferricorn TLS listener: the
# protocols, the ciphers and every vulnerability check it runs. Fails on
# any finding rated MEDIUM, HIGH or CRITICAL, except those about the
# suite's own test certificate and the app's response headers:
#   cert_revocation   the test CA publishes no CRL or OCSP responder
#   security_headers  the demo app sends no HSTS and the like (an app's
#                     choice, not the TLS server's)
# The certificate chain is made here with openssl, valid for a year, and
# its CA handed to testssl.sh (--add-ca).
#
#   bash tests/tls/testssl.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v testssl >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq testssl.sh >/dev/null
fi
cargo build --quiet --bin ferricorn

dir=$(mktemp -d)
server=
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$dir/ca.key" \
    -out "$dir/ca.pem" -days 400 -subj "/CN=testssl suite CA" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout "$dir/server.key" -out "$dir/server.csr" \
    -subj "/CN=localhost" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$dir/san.ext"
openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
    -out "$dir/server.pem" -days 365 -extfile "$dir/san.ext" 2>/dev/null

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"${CARGO_TARGET_DIR:-target}/debug/ferricorn" -w 1 -b "127.0.0.1:$port" --certfile "$dir/server.pem" \
    --keyfile "$dir/server.key" --log-level warning &
server=$!
for _ in $(seq 100); do
    curl -s --cacert "$dir/ca.pem" "https://localhost:$port/readyz" >/dev/null && break
    sleep 0.1
done

timeout 600 testssl --quiet --color 0 --warnings batch --ip one --fast \
    --add-ca "$dir/ca.pem" --jsonfile "$dir/testssl.json" "127.0.0.1:$port" >"$dir/testssl.txt" 2>&1 || true

python3 - "$dir/testssl.json" <<'PY'
import json
import sys

findings = json.load(open(sys.argv[1]))
allowed = {"cert_revocation", "security_headers"}
bad = [f for f in findings
       if f["severity"] in ("MEDIUM", "HIGH", "CRITICAL") and f["id"] not in allowed]
by_id = {f["id"]: f for f in findings}
needed = ["TLS1_2", "TLS1_3", "heartbleed", "ROBOT", "SWEET32", "LUCKY13", "BEAST", "POODLE_SSL"]
missing = [n for n in needed if n not in by_id]
for f in bad:
    print(f"testssl: {f['id']} {f['severity']}: {f['finding']}")
if missing:
    print(f"testssl: these checks did not run: {missing}")
if bad or missing:
    sys.exit(1)
offered = [n for n in ("SSLv2", "SSLv3", "TLS1", "TLS1_1") if by_id.get(n, {}).get("finding") != "not offered"]
if offered:
    print(f"testssl: old protocols offered: {offered}")
    sys.exit(1)
ok = sum(1 for f in findings if f["severity"] == "OK")
print(f"testssl: {len(findings)} findings, {ok} OK, none rated MEDIUM or worse "
      f"(besides {sorted(allowed)}); TLS 1.2 and 1.3 only")
PY
