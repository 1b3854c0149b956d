#!/usr/bin/env bash
# The Docker suite: builds docker/Dockerfile for real and checks the
# running container (the env names, the CPU quota, PID 1 and its signals,
# the healthcheck, a read-only non-root run).
#
#   bash tests/docker/run.sh
#
# No registry can be reached from the machines this runs on, so the base
# images are made here when they are missing, under the names the
# Dockerfile uses (a real image of that name, if present, is used as is):
#
# - rust:1-bookworm (the build stage): busybox, and a `cargo` whose
#   `cargo build --release --bin NAME` puts in place the binary built on
#   this host (tests/docker/cargo-shim), so the build stage runs its own
#   lines unchanged without a toolchain in the image;
# - gcr.io/distroless/cc-debian12:nonroot (the runtime stage): this Debian
#   12 host's glibc, libm and libgcc (the libraries distroless's cc image
#   holds), /etc/passwd and /etc/group with its nonroot user (65532), /tmp.
#
# Every line of the runtime stage, the one users run, is used as shipped.
# Installs Debian's docker.io and busybox-static where missing and starts
# dockerd where none runs; when no engine can be started it prints a
# WARNING and skips this suite alone. A check that runs and fails, fails.
set -euo pipefail
cd "$(dirname "$0")/../.."
IMAGE=ferricorn-test:latest
RUN_ID=ferricorn-test-$$

warn_skip() {
    echo "WARNING: Docker suite skipped: $1" >&2
    exit 0
}

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

engine() {
    docker info >/dev/null 2>&1
}

if ! engine; then
    export DEBIAN_FRONTEND=noninteractive
    if ! command -v dockerd >/dev/null || ! command -v docker >/dev/null; then
        { apt-get update -qq && apt-get install -y -qq docker.io >/dev/null; } ||
            warn_skip "docker.io could not be installed"
    fi
    (dockerd >/tmp/ferricorn-dockerd.log 2>&1 &)
    for _ in $(seq 60); do engine && break; sleep 0.5; done
    engine || warn_skip "dockerd did not start (see /tmp/ferricorn-dockerd.log)"
fi
if ! command -v busybox >/dev/null; then
    apt-get install -y -qq busybox-static >/dev/null || fail "busybox-static could not be installed"
fi

cargo build --release --quiet --bin ferricorn --example flags
# Where cargo puts its builds (CARGO_TARGET_DIR, if set).
built=${CARGO_TARGET_DIR:-target}
BINARY=$built/release/ferricorn

# --- base images, where missing -------------------------------------------
work=$(mktemp -d)
containers=()
cleanup() {
    for c in "${containers[@]}"; do docker rm -f "$c" >/dev/null 2>&1 || true; done
    rm -rf "$work"
}
trap cleanup EXIT

have_image() {
    docker image inspect "$1" >/dev/null 2>&1
}

# This suite's own stand-in is made again each run, with this run's binaries.
substitute() {
    [ "$(docker image inspect -f '{{index .Config.Labels "ferricorn.substitute"}}' "$1" 2>/dev/null)" = yes ]
}
if substitute rust:1-bookworm; then docker rmi -f rust:1-bookworm >/dev/null; fi
if ! have_image rust:1-bookworm; then
    root=$work/build-root
    mkdir -p "$root/bin" "$root/usr/local/bin" "$root/prebuilt" "$root/tmp"
    cp "$(command -v busybox)" "$root/bin/busybox"
    for applet in sh cp mkdir cat; do ln -s busybox "$root/bin/$applet"; done
    cp tests/docker/cargo-shim "$root/usr/local/bin/cargo"
    cp "$BINARY" "$root/prebuilt/ferricorn"
    # A program of a user's own (examples/flags.rs: "hello", its own flags).
    cp "$built/release/examples/flags" "$root/prebuilt/hello"
    tar -C "$root" -c . | docker import -c 'LABEL ferricorn.substitute=yes' - rust:1-bookworm >/dev/null
    echo "made rust:1-bookworm: busybox and tests/docker/cargo-shim with this host's binary"
fi
if ! have_image gcr.io/distroless/cc-debian12:nonroot; then
    root=$work/runtime-root
    mkdir -p "$root/etc" "$root/tmp" "$root/lib64" "$root/lib/x86_64-linux-gnu"
    chmod 1777 "$root/tmp"
    for lib in $(ldd "$BINARY" | grep -o '/[^ ]*'); do
        cp -L "$lib" "$root$lib"
    done
    printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$root/etc/passwd"
    printf 'root:x:0:\nnonroot:x:65532:\n' >"$root/etc/group"
    tar -C "$root" -c . | docker import - gcr.io/distroless/cc-debian12:nonroot >/dev/null
    echo "made gcr.io/distroless/cc-debian12:nonroot: this host's glibc, libm and libgcc"
fi

# --- the image ---------------------------------------------------------------
docker build -q -f docker/Dockerfile -t "$IMAGE" . >/dev/null || fail "docker build"
size=$(docker image inspect -f '{{.Size}}' "$IMAGE")
base=$(docker image inspect -f '{{.Size}}' gcr.io/distroless/cc-debian12:nonroot)
echo "image: $((size / 1000)) kB ($(((size - base) / 1000)) kB over its base)"
[ "$(docker image inspect -f '{{.Config.User}}' "$IMAGE")" = 65532:65532 ] || fail "the image's user is not 65532"
docker run --rm --entrypoint /bin/sh "$IMAGE" -c true >/dev/null 2>&1 && fail "the image has a shell"

# start NAME [docker run options...] -- [server args...]: a detached
# container, its port 8000 published on a free loopback port ($PORT).
start() {
    local name=$RUN_ID-$1
    shift
    local opts=() args=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do opts+=("$1"); shift; done
    [ $# -gt 0 ] && shift
    args=("$@")
    containers+=("$name")
    docker run -d --name "$name" -p 127.0.0.1::8000 "${opts[@]}" "${START_IMAGE:-$IMAGE}" "${args[@]}" >/dev/null
    PORT=$(docker port "$name" 8000/tcp | head -1 | sed 's/.*://')
    CONTAINER=$name
}

# ready: until GET /readyz answers 200 (at most 20 s).
ready() {
    for _ in $(seq 100); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/readyz")" = 200 ] && return 0
        sleep 0.2
    done
    docker logs "$CONTAINER" >&2 || true
    fail "$CONTAINER never became ready"
}

# logged PATTERN: whether the container's log has a line matching PATTERN.
# The whole log is read first: under pipefail, `docker logs | grep -q`
# fails when docker logs writes again after grep has stopped reading.
logged() {
    local log
    log=$(docker logs "$CONTAINER" 2>&1)
    grep -q "$1" <<<"$log"
}

# workers: the container's worker processes (children of its PID 1).
workers() {
    local pid1
    pid1=$(docker inspect -f '{{.State.Pid}}' "$CONTAINER")
    pgrep -P "$pid1" || true
}

# wait_workers N: until the container has N workers (at most 20 s).
wait_workers() {
    for _ in $(seq 100); do
        [ "$(workers | wc -l)" = "$1" ] && return 0
        sleep 0.2
    done
    fail "$CONTAINER has $(workers | wc -l) workers, not $1"
}

# wait_replaced BEFORE N: until the container has N workers, none of those
# listed in BEFORE (at most 20 s).
wait_replaced() {
    local now
    for _ in $(seq 100); do
        now=$(workers | sort)
        [ "$(comm -12 <(echo "$1") <(echo "$now") | wc -l)" = 0 ] && [ "$(echo "$now" | wc -l)" = "$2" ] && return 0
        sleep 0.2
    done
    return 1
}

# config_line KEY [docker run options...]: KEY's line of --print-config.
config_line() {
    local key=$1
    shift
    docker run --rm "$@" "$IMAGE" --print-config | grep -E "^$key = " ||
        fail "no $key in --print-config"
}

# expect_config KEY VALUE SOURCE [docker run options...]
expect_config() {
    local key=$1 value=$2 source=$3
    shift 3
    local line
    line=$(config_line "$key" "$@")
    [[ "$line" == "$key = $value"* && "$line" == *"$source"* ]] ||
        fail "--print-config with $*: expected $key = $value from $source, got: $line"
}

echo "## 0. your own binary in place of the demo (--build-arg BIN)"
if substitute rust:1-bookworm; then
    docker build -q -f docker/Dockerfile --build-arg BIN=hello -t ferricorn-test-hello . >/dev/null ||
        fail "docker build --build-arg BIN=hello"
    version=$(docker run --rm ferricorn-test-hello --version)
    [ "$version" = "hello 2.3.4" ] || fail "the BIN=hello image says: $version"
    START_IMAGE=ferricorn-test-hello start hello -- --greeting Howdy
    ready
    [ "$(curl -s "http://127.0.0.1:$PORT/")" = Howdy ] || fail "the BIN=hello image does not serve its app"
    docker rm -f "$CONTAINER" >/dev/null
    docker rmi -f ferricorn-test-hello >/dev/null
    echo "ok"
else
    echo "skipped: a real rust:1-bookworm builds only the workspace's bin targets (the check uses an example)"
fi

echo "## 1. the env names"
expect_config bind '["0.0.0.0:8000"]' "UVICORN_HOST"
expect_config bind '["0.0.0.0:9001"]' "PORT" -e PORT=9001
expect_config bind '["0.0.0.0:9002"]' "UVICORN_PORT" -e UVICORN_PORT=9002
expect_config bind '["127.0.0.1:9003"]' "UVICORN_" -e UVICORN_HOST=127.0.0.1 -e UVICORN_PORT=9003
expect_config workers 3 "WEB_CONCURRENCY" -e WEB_CONCURRENCY=3
expect_config workers 4 "GUNICORN_WORKERS" -e GUNICORN_WORKERS=4
expect_config workers 5 "UVICORN_WORKERS" -e UVICORN_WORKERS=5
expect_config log_level '"debug"' "GUNICORN_LOG_LEVEL" -e GUNICORN_LOG_LEVEL=debug
expect_config log_level '"warning"' "UVICORN_LOG_LEVEL" -e UVICORN_LOG_LEVEL=warning
expect_config timeout 45 "GUNICORN_CMD_ARGS" -e "GUNICORN_CMD_ARGS=--timeout 45"
expect_config forwarded_allow_ips '["10.0.0.0/8"]' "FORWARDED_ALLOW_IPS" -e FORWARDED_ALLOW_IPS=10.0.0.0/8
# And they change what the running container does.
start env -e PORT=8000 -e WEB_CONCURRENCY=3 -e GUNICORN_LOG_LEVEL=warning -e FORWARDED_ALLOW_IPS='*' --
ready
wait_workers 3
! logged "\[INFO\]" || fail "GUNICORN_LOG_LEVEL=warning still logged INFO lines"
whoami=$(curl -s -H 'X-Forwarded-For: 203.0.113.7' "http://127.0.0.1:$PORT/whoami")
[[ "$whoami" == *203.0.113.7* ]] || fail "FORWARDED_ALLOW_IPS='*' did not trust X-Forwarded-For: $whoami"
docker rm -f "$CONTAINER" >/dev/null
echo "ok"

echo "## 2. the CPU quota"
# No worker count set: the automatic one follows the quota (cgroup v1 here).
expect_config workers 0 "auto: 1 " --cpus 1
expect_config workers 0 "auto: 2 " --cpus 2
expect_config workers 0 "auto: 1 " --cpuset-cpus 0
start quota --cpus 1 --
ready
wait_workers 1
# (At the default level the same lines are there: the check above is real.)
logged "\[INFO\]" || fail "a container at the default level logged no INFO line"
docker rm -f "$CONTAINER" >/dev/null
echo "ok"

echo "## 3. PID 1"
start pid1 --stop-timeout 30 -- --graceful-timeout 10 -w 2
ready
wait_workers 2
# docker stop during a slow request: it finishes, the container exits 0.
out=$work/slow.txt
(curl -s -o "$out" -w '%{http_code}' "http://127.0.0.1:$PORT/blocking?ms=2000" >"$work/slow.code" || true) &
slow=$!
sleep 0.5
started=$(date +%s)
docker stop "$CONTAINER" >/dev/null
wait "$slow"
[ "$(cat "$work/slow.code")" = 200 ] || fail "the in-flight request got $(cat "$work/slow.code") at docker stop"
[ "$(docker inspect -f '{{.State.ExitCode}}' "$CONTAINER")" = 0 ] || fail "docker stop: exit code $(docker inspect -f '{{.State.ExitCode}}' "$CONTAINER")"
[ $(($(date +%s) - started)) -lt 10 ] || fail "docker stop took longer than the graceful timeout"
docker rm -f "$CONTAINER" >/dev/null

start signals -- -w 2
ready
wait_workers 2
pid1=$(docker inspect -f '{{.State.Pid}}' "$CONTAINER")
# HUP under load: every request answered.
load() {
    python3 - "$PORT" "$1" <<'PY'
import http.client, sys, time
port, seconds = int(sys.argv[1]), float(sys.argv[2])
ok = failed = 0
end = time.time() + seconds
while time.time() < end:
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("GET", "/")
        r = c.getresponse()
        r.read()
        ok += r.status == 200
        failed += r.status != 200
        c.close()
    except OSError:
        failed += 1
print(ok, failed)
PY
}
load 4 >"$work/load.txt" &
loader=$!
sleep 1
before=$(workers | sort)
docker kill -s HUP "$CONTAINER" >/dev/null
wait "$loader"
read -r ok failed <"$work/load.txt"
[ "$failed" = 0 ] && [ "$ok" -gt 0 ] || fail "HUP under load: $ok answered, $failed failed"
wait_replaced "$before" 2 || fail "HUP did not replace the workers"
# TTIN and TTOU scale.
docker kill -s TTIN "$CONTAINER" >/dev/null
wait_workers 3
docker kill -s TTOU "$CONTAINER" >/dev/null
wait_workers 2
# USR2 upgrades in place: the same PID 1, new workers, still serving.
before=$(workers | sort)
docker kill -s USR2 "$CONTAINER" >/dev/null
wait_replaced "$before" 2 || fail "USR2 did not replace the workers"
[ "$(docker inspect -f '{{.State.Pid}}' "$CONTAINER")" = "$pid1" ] || fail "USR2 changed PID 1"
[ "$(docker inspect -f '{{.State.Running}}' "$CONTAINER")" = true ] || fail "USR2 stopped the container"
ready
# Killed workers are replaced and reaped: no zombie in the container.
for w in $(workers); do kill -9 "$w"; done
wait_workers 2
ready
zombies=$(docker top "$CONTAINER" -eo pid,stat | awk 'NR > 1 && $2 ~ /^Z/' | wc -l)
[ "$zombies" = 0 ] || fail "$zombies zombies in the container"
docker rm -f "$CONTAINER" >/dev/null
echo "ok"

echo "## 4. health"
start health --health-interval 1s --health-timeout 1s --health-retries 2 --health-start-period 0s -- -w 1 --timeout 300
health() { docker inspect -f '{{.State.Health.Status}}' "$CONTAINER"; }
for _ in $(seq 60); do [ "$(health)" = healthy ] && break; sleep 0.5; done
[ "$(health)" = healthy ] || fail "the container never became healthy: $(health)"
# A worker that cannot answer: the container turns unhealthy.
for w in $(workers); do kill -STOP "$w"; done
for _ in $(seq 60); do [ "$(health)" = unhealthy ] && break; sleep 0.5; done
[ "$(health)" = unhealthy ] || fail "a stopped worker left the container $(health)"
for w in $(workers); do kill -CONT "$w"; done
for _ in $(seq 60); do [ "$(health)" = healthy ] && break; sleep 0.5; done
[ "$(health)" = healthy ] || fail "the container did not recover: $(health)"
docker rm -f "$CONTAINER" >/dev/null
echo "ok"

echo "## 5. read-only, no capabilities, another user"
start locked --read-only --cap-drop ALL --user 10001 --
ready
[ "$(curl -s "http://127.0.0.1:$PORT/")" = "Hello, World!" ] || fail "the locked-down container does not serve"
docker rm -f "$CONTAINER" >/dev/null
echo "ok"

echo "## 6. compose: Redis, two replicas sharing the channel layer, HAProxy"
if ! command -v docker-compose >/dev/null; then
    apt-get install -y -qq docker-compose >/dev/null || fail "docker-compose could not be installed"
fi
# rootfs_of IMAGE FILE...: an image of FILEs (at their paths) and the
# libraries they load, where IMAGE is missing.
rootfs_of() {
    local image=$1
    shift
    have_image "$image" && return 0
    local root=$work/root-${image//[:\/]/-}
    mkdir -p "$root/tmp" "$root/etc"
    chmod 1777 "$root/tmp"
    for f in "$@" $(ldd "$@" | grep -o '/[^ :]*' | sort -u); do
        mkdir -p "$root$(dirname "$f")"
        cp -L "$f" "$root$f"
    done
    printf 'root:x:0:0:root:/root:/sbin/nologin\n' >"$root/etc/passwd"
    tar -C "$root" -c . | docker import - "$image" >/dev/null
    echo "made $image: this host's $*"
}
# HAProxy and Redis: this host's binaries make their images below.
for tool in haproxy redis-server; do
    command -v "$tool" >/dev/null ||
        { apt-get update -qq && apt-get install -y -qq --no-install-recommends "$tool" >/dev/null; } ||
        fail "$tool could not be installed"
done
(systemctl stop haproxy || service haproxy stop || true) >/dev/null 2>&1
rootfs_of redis:7-bookworm /usr/bin/redis-server /usr/bin/redis-cli
rootfs_of haproxy:2.6 /usr/sbin/haproxy
docker tag "$IMAGE" ferricorn:latest
project=ferricorn-test-$$
lb_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
compose() {
    HOST_PORT=127.0.0.1:$lb_port docker-compose -p "$project" -f docker/compose.yaml --compatibility "$@"
}
down() {
    compose down -v --remove-orphans >/dev/null 2>&1 || true
}
trap 'down; cleanup' EXIT
compose up -d --no-build >/dev/null 2>&1 || { compose logs --tail 30 >&2; fail "compose up"; }
replicas=$(compose ps -q web)
[ "$(echo "$replicas" | wc -l)" = 2 ] || fail "compose started $(echo "$replicas" | wc -l) web replicas, not 2"
for r in $replicas; do
    [ "$(docker inspect -f '{{.HostConfig.NanoCpus}}' "$r")" = 1000000000 ] || fail "replica $r has no 1-CPU limit"
done
for _ in $(seq 150); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$lb_port/readyz")" = 200 ] && break
    sleep 0.2
done
python3 tests/docker/compose_chat.py "$lb_port" $(echo "$replicas" | head -1) ||
    { compose logs --tail 20 >&2; fail "the compose chat"; }
compose down -v --remove-orphans >/dev/null 2>&1 || fail "compose down"
left=$(docker ps -aq --filter "label=com.docker.compose.project=$project" | wc -l)
[ "$left" = 0 ] || fail "$left containers left after compose down"
[ -z "$(docker network ls -q --filter "name=${project}_")" ] || fail "a network left after compose down"
echo "ok"

echo "docker suite: passed (image $((size / 1000)) kB)"
