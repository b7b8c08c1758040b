#!/usr/bin/env bash
# Runs the acceptance benchmark and its numpy peer back to back on this machine
# and prints Monte-Carlo trials per second with the ratios, as recorded in
# BENCHMARKS.md. Usage: workbench/benches/acceptance_compare.sh [SECONDS]
# Needs numpy (`pip install numpy`); not part of CI.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds="${1:-2}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/workbench-target}"
out=$(mktemp -d)
cargo bench --bench acceptance --locked -- --seconds "$seconds" | grep '"impl"' > "$out/rust.jsonl"
python3 workbench/benches/acceptance_numpy.py --seconds "$seconds" > "$out/numpy1.jsonl"
python3 workbench/benches/acceptance_numpy.py --seconds "$seconds" --processes 2 | grep '"processes": 2' > "$out/numpy2.jsonl" || \
  python3 workbench/benches/acceptance_numpy.py --seconds "$seconds" --processes 2 | grep '"processes":2' > "$out/numpy2.jsonl"
python3 - "$out" <<'PY'
import json, sys, pathlib
d = pathlib.Path(sys.argv[1])
def load(name):
    rows = {}
    for line in (d / name).read_text().splitlines():
        r = json.loads(line)
        rows[(r["rule"], r["vocab"])] = r["trials_per_s"]
    return rows
rust, np1, np2 = load("rust.jsonl"), load("numpy1.jsonl"), load("numpy2.jsonl")
print("| rule | V | Rust, 2 threads | numpy, 1 process | numpy, 2 processes | Rust / numpy-1 | Rust / numpy-2 |")
print("|---|---|---|---|---|---|---|")
for key in sorted(rust, key=lambda k: (k[1], k[0])):
    r, a, b = rust[key], np1.get(key), np2.get(key)
    print(f"| {key[0]} | {key[1]} | {r:.3g} | {a:.3g} | {b:.3g} | {r / a:.1f}x | {r / b:.1f}x |")
PY
