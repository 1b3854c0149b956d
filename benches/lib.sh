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
