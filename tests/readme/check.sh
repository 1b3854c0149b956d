#!/usr/bin/env bash
# Builds every Rust example of the README as a crate of its own, with the
# README's own Cargo.toml lines (the ferricorn path pointed at this
# checkout): what a new user's crate gets, with nothing of ferricorn's
# workspace (its dependencies, its dev-dependencies) to lean on.
#
#   bash tests/readme/check.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
dir="$root/target/readme-check"
rm -rf "$dir"
mkdir -p "$dir/src" "$dir/examples"

python3 - "$root" "$dir" <<'PY'
import pathlib, re, sys

root, dir = map(pathlib.Path, sys.argv[1:])
readme = (root / "README.md").read_text()
blocks = re.findall(r"^```(\S*)\n(.*?)^```", readme, re.S | re.M)
tomls = [body for lang, body in blocks if lang == "toml" and "[dependencies]" in body]
if len(tomls) != 1:
    sys.exit(f"README: expected one Cargo.toml block with [dependencies], found {len(tomls)}")
deps, n = re.subn(r'ferricorn = \{ path = "[^"]*" \}',
                  f'ferricorn = {{ path = "{root / "crates/ferricorn"}" }}', tomls[0])
if n != 1:
    sys.exit("README: the Cargo.toml block names ferricorn by no path")
(dir / "Cargo.toml").write_text(
    '[package]\nname = "readme-examples"\nversion = "0.0.0"\nedition = "2024"\npublish = false\n\n'
    + deps + "\n[workspace]\n")
(dir / "src/main.rs").write_text("fn main() {}\n")
rust = [body for lang, body in blocks if lang.split(",")[0] == "rust"]
if not rust:
    sys.exit("README: no Rust example")
for i, body in enumerate(rust, 1):
    (dir / "examples" / f"readme_{i}.rs").write_text(body)
print(f"README: {len(rust)} Rust examples, built with its Cargo.toml lines")
PY

# The workspace's lock file pins the versions ferricorn is tested with.
cp "$root/Cargo.lock" "$dir/Cargo.lock"
# Warnings fail too: an example a user copies should be clean.
out=$(CARGO_TARGET_DIR="$root/target" cargo build --quiet --manifest-path "$dir/Cargo.toml" --examples 2>&1) || {
    echo "$out" >&2
    exit 1
}
if grep -q "^warning" <<<"$out"; then
    echo "$out" >&2
    echo "README examples: warnings" >&2
    exit 1
fi
echo "README examples: built"
