#!/usr/bin/env bash
# HTTPS: ferricorn beside nginx serving the same certificate, in one run.
#
# Makes an ECDSA P-256 chain with openssl, starts ferricorn (--certfile)
# and nginx (`ssl` and `http2` on one listener), each with WORKERS
# workers, and for ROUNDS rounds runs, against each in turn (each round
# starting with the next server):
#   h1     wrk -t1 -c64 over HTTPS, keep-alive: HTTP/1.1 req/s and p99;
#   h2     h2load -c16 -m10 over HTTPS (ALPN h2): req/s and p99 (from its
#          per-request log);
#   new    wrk -c16 with `Connection: close`: every request on a new
#          connection, so each is a full TLS handshake: handshakes/s.
# Prints the median of each, with the servers' CPU time per request from
# /proc (user + system µs), which depends less than req/s on how the two
# CPUs were shared with the load generator.
#
#   benches/tls.sh                 # or: just bench-tls
#   ROUNDS=5 DURATION=10s benches/tls.sh
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5s}
WORKERS=${WORKERS:-2}
TARGET=${CARGO_TARGET_DIR:-$PWD/target}

source benches/lib.sh
need wrk wrk
need nginx nginx-light
need h2load nghttp2-client
need openssl openssl
cargo build --release --quiet --bin ferricorn

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$WORK/ca.key" \
    -out "$WORK/ca.pem" -days 2 -subj "/CN=bench CA" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$WORK/key.pem" \
    -out "$WORK/server.csr" -subj "/CN=localhost" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$WORK/san.ext"
openssl x509 -req -in "$WORK/server.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" -CAcreateserial \
    -out "$WORK/cert.pem" -days 2 -extfile "$WORK/san.ext" 2>/dev/null

declare -A PORT PID
start() { # NAME COMMAND...
    local name=$1; shift
    "$@" >"$WORK/$name.log" 2>&1 &
    PID[$name]=$!
    PIDS+=($!)
}
PORT[ferricorn]=$(free_port)
start ferricorn "$TARGET/release/ferricorn" -w "$WORKERS" -b "127.0.0.1:${PORT[ferricorn]}" \
    --certfile "$WORK/cert.pem" --keyfile "$WORK/key.pem" --log-level warning --keep-alive 75
PORT[nginx]=$(free_port)
mkdir -p "$WORK/nginx"
cat >"$WORK/nginx/nginx.conf" <<NGINX
worker_processes $WORKERS;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    server {
        listen 127.0.0.1:${PORT[nginx]} ssl http2 reuseport;
        ssl_certificate $WORK/cert.pem;
        ssl_certificate_key $WORK/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        location = / {
            default_type text/plain;
            return 200 "Hello, World!";
        }
    }
}
NGINX
start nginx nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log"
SERVERS=(ferricorn nginx)
for s in "${SERVERS[@]}"; do
    for _ in $(seq 100); do
        curl -sf --cacert "$WORK/ca.pem" "https://localhost:${PORT[$s]}/" >/dev/null && break
        sleep 0.1
    done
done

secs=${DURATION%s}
RESULTS=$WORK/results
: >"$RESULTS"
echo "ferricorn $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) CPUs; each server $WORKERS workers; $DURATION per load, $ROUNDS rounds" >&2
# measure SERVER LOAD COMMAND...: runs the load, prints "requests p99_ms cpu_us_per_request".
for round in $(seq "$ROUNDS"); do
    for s in $(rotated "$round" "${SERVERS[@]}"); do
        url="https://127.0.0.1:${PORT[$s]}/"
        for load in h1 h2 new; do
            read -r user0 sys0 < <(tree_cpu "${PID[$s]}")
            case $load in
            h1)
                out=$(wrk -t1 -c64 -d"$DURATION" --latency "$url")
                n=$(awk '/requests in/ {print $1}' <<<"$out")
                p99=$(ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
                ;;
            h2)
                rm -f "$WORK/h2.log"
                out=$(h2load -c16 -m10 -D "$secs" --log-file="$WORK/h2.log" "$url" 2>&1)
                n=$(awk '/^requests:/ {print $8}' <<<"$out")
                p99=$(awk '{print $3}' "$WORK/h2.log" | sort -n |
                    awk '{v[NR]=$1} END {i=int(NR*0.99); if (i<1) i=1; printf "%.3f", v[i]/1000}')
                ;;
            new)
                out=$(wrk -t1 -c16 -d"$DURATION" --latency -H 'Connection: close' "$url")
                n=$(awk '/requests in/ {print $1}' <<<"$out")
                p99=$(ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
                ;;
            esac
            read -r user1 sys1 < <(tree_cpu "${PID[$s]}")
            line=$(awk -v u=$((user1 - user0)) -v k=$((sys1 - sys0)) -v n="$n" -v d="$secs" \
                -v hz="$(getconf CLK_TCK)" -v p="$p99" \
                'BEGIN {printf "%.0f %s %.1f", n / d, p, (u + k) * 1e6 / hz / n}')
            echo "$s $load $line" >>"$RESULTS"
            echo "  round $round $s $load: $line (per s, p99 ms, CPU µs/request)" >&2
        done
    done
done

python3 - "$RESULTS" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    s, load, rate, p99, cpu = line.split()
    rows.setdefault((s, load), []).append((float(rate), float(p99), float(cpu)))
names = {"h1": "HTTPS HTTP/1.1 req/s", "h2": "HTTPS h2 req/s", "new": "new TLS handshakes/s"}
print()
print(f"{'load':<22}{'server':<11}{'per s':>9}{'p99 ms':>9}{'CPU µs/req':>12}   ferricorn/nginx (rate, CPU)")
for load in ("h1", "h2", "new"):
    med = {s: [statistics.median(r[i] for r in rows[(s, load)]) for i in range(3)]
           for s in ("ferricorn", "nginx")}
    for s in ("ferricorn", "nginx"):
        rate, p99, cpu = med[s]
        ratio = ""
        if s == "nginx":
            f = med["ferricorn"]
            ratio = f"   {f[0] / rate:.2f}x, {f[2] / cpu:.2f}x"
        print(f"{names[load]:<22}{s:<11}{rate:>9.0f}{p99:>9.2f}{cpu:>12.1f}{ratio}")
PY
