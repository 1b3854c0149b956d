#!/usr/bin/env bash
# ferricorn beside the servers its users would otherwise pick, on this box.
#
# Builds ferricorn and the baselines in benches/baselines (a plain actix-web
# server and a plain hyper multi-thread server with the same routes, the
# same hyper server in ferricorn's process model (hyper-reuseport: one
# current-thread runtime and one SO_REUSEPORT listener per thread, each
# connection served by the thread that accepted it), a plain
# tokio-tungstenite echo server, and the ws-load client) in release, and
# writes an nginx config returning the same bodies. Starts each with 2
# workers (or threads) on loopback, then, for ROUNDS rounds, runs the same
# bounded wrk load (1 thread, 64 connections, DURATION) against / and /json
# of each in turn, each round starting with the next server. Prints, per
# server and path, the median req/s and the lowest and highest round's,
# the median p50/p99 latency, the server's median CPU time per request
# (user and system as /proc splits them at each clock tick; their sum is
# steadier than req/s, which depends on how the CPUs were shared with
# wrk), the total RSS of each server's processes (idle and after the
# load), and ferricorn's ratio to each. Then the WebSocket echo load (ws-load: 64
# connections, a 32-byte text message and its echo, over and over) against
# ferricorn's /ws/echo and the tokio-tungstenite server, and the memory
# each takes per idle WebSocket (benches/ws_idle.py).
#
# SERVER_CPUS and LOAD_CPUS (CPU lists as taskset takes them) pin the
# servers and the load generators apart, so that no worker waits behind
# wrk for a CPU: on a host with a CPU per worker and more, that is the
# comparison to make, latency above all.
#
#   benches/compare.sh              # or: just bench-compare
#   ROUNDS=5 DURATION=10s benches/compare.sh
#   WORKERS=1 SERVER_CPUS=1 LOAD_CPUS=0 benches/compare.sh
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-1}
WORKERS=${WORKERS:-2}
SERVER_CPUS=${SERVER_CPUS:-}
LOAD_CPUS=${LOAD_CPUS:-}
TARGET=${CARGO_TARGET_DIR:-$PWD/target}

source benches/lib.sh
need wrk wrk
need nginx nginx-light
[ -z "$SERVER_CPUS$LOAD_CPUS" ] || need taskset util-linux
# pinned CPUS COMMAND...: runs COMMAND on those CPUs, or anywhere if none.
pinned() {
    local cpus=$1
    shift
    if [ -n "$cpus" ]; then exec taskset -c "$cpus" "$@"; else exec "$@"; fi
}
cargo build --release --quiet --bin ferricorn
(cd benches/baselines && CARGO_TARGET_DIR="$TARGET" cargo build --release --quiet)
BIN=$TARGET/release

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

declare -A PORT PID
start() { # NAME COMMAND...: on SERVER_CPUS
    local name=$1; shift
    (pinned "$SERVER_CPUS" "$@") >"$WORK/$name.log" 2>&1 &
    PID[$name]=$!
    PIDS+=($!)
}

PORT[ferricorn]=$(free_port)
start ferricorn "$BIN/ferricorn" -w "$WORKERS" -b "127.0.0.1:${PORT[ferricorn]}" --log-level warning
PORT[actix-web]=$(free_port)
start actix-web "$BIN/actix" "127.0.0.1:${PORT[actix-web]}" "$WORKERS"
PORT[hyper]=$(free_port)
start hyper "$BIN/hyper" "127.0.0.1:${PORT[hyper]}" "$WORKERS"
PORT[hyper-reuseport]=$(free_port)
start hyper-reuseport "$BIN/hyper-reuseport" "127.0.0.1:${PORT[hyper-reuseport]}" "$WORKERS"
PORT[nginx]=$(free_port)
mkdir -p "$WORK/nginx"
sed "s|@PORT@|${PORT[nginx]}|; s|@DIR@|$WORK/nginx|g; s|@WORKERS@|$WORKERS|" benches/nginx.conf \
    >"$WORK/nginx/nginx.conf"
start nginx nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log"
SERVERS=(ferricorn actix-web hyper hyper-reuseport nginx)
for s in "${SERVERS[@]}"; do wait_up "${PORT[$s]}" /; done
sleep 1
declare -A IDLE
for s in "${SERVERS[@]}"; do IDLE[$s]=$(tree_rss "${PID[$s]}"); done

RESULTS=$WORK/results
: >"$RESULTS"
pinning=""
[ -z "$SERVER_CPUS$LOAD_CPUS" ] || pinning="; servers on CPUs ${SERVER_CPUS:-any}, load on ${LOAD_CPUS:-any}"
echo "ferricorn $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) CPUs; each server $WORKERS workers/threads; wrk -t$THREADS -c$CONNECTIONS -d$DURATION, $ROUNDS rounds$pinning" >&2
for round in $(seq "$ROUNDS"); do
    for s in $(rotated "$round" "${SERVERS[@]}"); do
        for path in / /json; do
            read -r user0 sys0 < <(tree_cpu "${PID[$s]}")
            out=$(pinned "$LOAD_CPUS" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency \
                "http://127.0.0.1:${PORT[$s]}$path")
            read -r user1 sys1 < <(tree_cpu "${PID[$s]}")
            n=$(awk '/requests in/ {print $1}' <<<"$out")
            # The server's CPU time per request, in µs (user, system).
            cpu=$(awk -v u=$((user1 - user0)) -v s=$((sys1 - sys0)) -v n="$n" -v hz="$(getconf CLK_TCK)" \
                'BEGIN {printf "%.2f %.2f", u * 1e6 / hz / n, s * 1e6 / hz / n}')
            rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
            p50=$(ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")
            p99=$(ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
            errors=$(awk '/Non-2xx|Socket errors/ {printf "%s ", $0}' <<<"$out")
            echo "$s $path $rps $p50 $p99 $cpu" >>"$RESULTS"
            echo "  round $round $s $path: $rps req/s, p50 $p50 ms, p99 $p99 ms, CPU µs/request (user sys) $cpu ${errors}" >&2
        done
    done
done
for s in "${SERVERS[@]}"; do echo "rss $s ${IDLE[$s]} $(tree_rss "${PID[$s]}") $(processes "${PID[$s]}")" >>"$RESULTS"; done

# WebSocket echo: ferricorn's /ws/echo against a plain tokio-tungstenite server.
PORT[ws]=$(free_port)
start ws "$BIN/ws-echo" "127.0.0.1:${PORT[ws]}" "$WORKERS"
for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/${PORT[ws]}") 2>/dev/null && break; sleep 0.1; done
secs=${DURATION%s}
for round in $(seq "$ROUNDS"); do
    for s in $(rotated "$round" ferricorn tokio-tungstenite); do
        url="ws://127.0.0.1:${PORT[ferricorn]}/ws/echo"
        [ "$s" = ferricorn ] || url="ws://127.0.0.1:${PORT[ws]}/"
        out=$(pinned "$LOAD_CPUS" "$BIN/ws-load" "$url" "$CONNECTIONS" "$secs")
        echo "  round $round $s ws: $out" >&2
        echo "ws $s $(awk '{print $2, $4, $6, $8}' <<<"$out" | sed 's/ms//g')" >>"$RESULTS"
    done
done

# Memory per idle WebSocket: IDLE_SOCKETS sockets opened and held, the
# server's RSS (all its processes) before and after.
IDLE_SOCKETS=${IDLE_SOCKETS:-300}
for s in ferricorn tokio-tungstenite; do
    port=${PORT[ferricorn]} path=/ws/echo pid=${PID[ferricorn]}
    [ "$s" = ferricorn ] || port=${PORT[ws]} path=/ pid=${PID[ws]}
    kib=$(python3 benches/ws_idle.py "$port" "$path" "$IDLE_SOCKETS" $(tree_pids "$pid"))
    echo "  $s: $kib KiB of RSS per idle WebSocket ($IDLE_SOCKETS open)" >&2
    echo "wsidle $s $kib" >>"$RESULTS"
done

python3 - "$RESULTS" <<'PY'
import statistics, sys
http, rss, ws, wsidle = {}, {}, {}, {}
for line in open(sys.argv[1]):
    f = line.split()
    if f[0] == "wsidle":
        wsidle[f[1]] = float(f[2])
    elif f[0] == "rss":
        rss[f[1]] = tuple(int(x) for x in f[2:7])
    elif f[0] == "ws":
        ws.setdefault(f[1], []).append(tuple(float(x) for x in f[2:6]))
    else:
        http.setdefault((f[0], f[1]), []).append(tuple(float(x) for x in f[2:7]))
med = lambda rows, i: statistics.median(r[i] for r in rows)
servers = list(dict.fromkeys(s for s, _ in http))
print()
print(f"{'server':<18}{'path':<7}{'req/s':>10}{'rounds (k req/s)':>18}{'p50 ms':>9}{'p99 ms':>9}"
      f"{'user µs':>9}{'sys µs':>8}   ferricorn/this")
for path in ("/", "/json"):
    ours = med(http[("ferricorn", path)], 0)
    for s in servers:
        rows = http[(s, path)]
        ratio = "" if s == "ferricorn" else f"{ours / med(rows, 0):.2f}x req/s"
        # The spread of the rounds: how far one run's medians can be trusted.
        spread = f"{min(r[0] for r in rows) / 1000:.1f}-{max(r[0] for r in rows) / 1000:.1f}"
        print(f"{s:<18}{path:<7}{med(rows, 0):>10.0f}{spread:>18}{med(rows, 1):>9.2f}{med(rows, 2):>9.2f}"
              f"{med(rows, 3):>9.2f}{med(rows, 4):>8.2f}   {ratio}")
print()
print(f"{'server':<18}{'processes':>10}{'idle RSS MiB':>14}{'idle PSS MiB':>14}{'loaded RSS MiB':>16}")
for s in servers:
    idle, idle_pss, loaded, _, n = rss[s]
    print(f"{s:<18}{n:>10}{idle / 1024:>14.1f}{idle_pss / 1024:>14.1f}{loaded / 1024:>16.1f}")
if ws:
    print()
    print(f"{'WebSocket echo':<18}{'msg/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}")
    for s, rows in ws.items():
        print(f"{s:<18}{med(rows, 0):>10.0f}{med(rows, 1):>9.2f}{med(rows, 2):>9.2f}{sum(r[3] for r in rows):>8.0f}")
    a, b = ws.get("ferricorn"), ws.get("tokio-tungstenite")
    if a and b:
        print(f"ferricorn/tokio-tungstenite: {med(a, 0) / med(b, 0):.2f}x msg/s")
for s, kib in wsidle.items():
    print(f"{s:<18}{kib:>10.1f} KiB RSS per idle WebSocket")
PY
