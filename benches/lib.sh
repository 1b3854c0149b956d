# Helpers the bench scripts share: `source benches/lib.sh`.

# need COMMAND PACKAGE: installs the Debian package if the command is missing.
need() {
    command -v "$1" >/dev/null && return
    echo "installing $2" >&2
    apt-get update -qq && apt-get install -y -qq "$2" >/dev/null
}

# A loopback port nothing listens on.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# up PORT [PATH]: whether GET PATH (default /) answers 200 on loopback.
up() {
    python3 - "$1" "${2:-/}" <<'PY'
import socket, sys
try:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1)
    s.sendall(f"GET {sys.argv[2]} HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n".encode())
    sys.exit(0 if s.recv(64).startswith(b"HTTP/1.1 200") else 1)
except OSError:
    sys.exit(1)
PY
}

# wait_up PORT [PATH [TENTHS]]: waits up to TENTHS tenths of a second
# (default 100: 10 s) for `up`; fails (and so stops a `set -e` script) if
# nothing answers.
wait_up() {
    for _ in $(seq "${3:-100}"); do up "$1" "${2:-/}" && return 0; sleep 0.1; done
    echo "nothing answered 200 on port $1 ${2:-/}" >&2
    return 1
}

# A process and its children.
tree_pids() {
    echo "$1" $(for p in /proc/[0-9]*; do
        [ "$(awk '{print $4}' "$p/stat" 2>/dev/null)" = "$1" ] && basename "$p"; done)
}
# Total RSS and PSS (shared pages divided among the processes mapping
# them) in KiB of a process and its children.
tree_rss() {
    local rss=0 pss=0 pid
    for pid in $(tree_pids "$1"); do
        rss=$((rss + $(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)))
        pss=$((pss + $(awk '/^Pss:/ {print $2}' "/proc/$pid/smaps_rollup" 2>/dev/null || echo 0)))
    done
    echo "$rss $pss"
}
# User and system CPU time, in clock ticks, of a process and its children.
tree_cpu() {
    local user=0 sys=0 pid u s
    for pid in $(tree_pids "$1"); do
        read -r u s < <(awk '{print $14, $15}' "/proc/$pid/stat" 2>/dev/null || echo "0 0")
        user=$((user + u)) sys=$((sys + s))
    done
    echo "$user $sys"
}
processes() { tree_pids "$1" | wc -w; }
# rotated ROUND NAME...: the names, starting with the ROUND-th (cyclically),
# so that no server always runs first.
rotated() {
    local round=$1
    shift
    local names=("$@") first=$(((round - 1) % $#))
    echo "${names[@]:first}" "${names[@]:0:first}"
}

# ms TIME: wrk's latency (`812.00us`, `1.20ms`, `2.01s`) in ms.
ms() { awk '{v=$1; if (v ~ /us$/) {sub(/us$/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v*=1000}; printf "%.3f", v}' <<<"$1"; }
