#!/usr/bin/env bash
# The real-browser suite: the demo's chat page in Debian's Chromium,
# headless, driven by Selenium (PyPI) through Debian's chromedriver
# (tests/browser/chat.py), on two servers sharing Debian's redis-server,
# and a third over HTTPS (openssl makes its certificate).
# Installs what is missing; when Chromium cannot be installed, prints a
# WARNING and skips this suite alone. A test that runs and fails, fails.
#
#   bash tests/browser/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    if ! { apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null; }; then
        echo "WARNING: browser suite skipped: Chromium and chromedriver could not be installed" >&2
        exit 0
    fi
fi
if ! command -v redis-server >/dev/null || ! command -v openssl >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq redis-server openssl >/dev/null
fi
venv=target/browser-venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import selenium" 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q selenium
fi
cargo build --quiet --bin ferricorn
timeout 300 "$venv/bin/python" tests/browser/chat.py "${CARGO_TARGET_DIR:-target}/debug/ferricorn"
