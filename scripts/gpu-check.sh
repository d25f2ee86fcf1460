#!/usr/bin/env bash
# GPU check of the CUDA data plane (needs an NVIDIA GPU and driver; no CUDA toolkit):
# builds with --features cuda, runs the CUDA data-plane tests (a skip fails here), then
# `moeplan run` with the slots in GPU memory, every expert resident vs 25% capacity (lru and
# predictive), checks the outputs are equal, and prints host-to-device bandwidth and tokens/s.
# Target: under 5 minutes on one H100/H200 (build included on a warm cargo cache).
# Usage: scripts/gpu-check.sh [TOKENS]   (default 300)
set -euo pipefail
cd "$(dirname "$0")/.."
tokens="${1:-300}"
t0=$(date +%s)
say() { printf '[%4ss] %s\n' "$(( $(date +%s) - t0 ))" "$*"; }
gpu=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1 || true)
say "GPU: ${gpu:-none found by nvidia-smi}"
say "building (release, --features cuda)"
cargo build -q --release --features cuda --bin moeplan
cargo test -q --release --features cuda --test dataplane --no-run 2>/dev/null
say "CUDA data-plane tests"
MOEPLAN_REQUIRE_CUDA=1 cargo test -q --release --features cuda --test dataplane -- cuda:: 2>&1 | tail -3
bin=target/release/moeplan
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
say "model (DeepSeek-V2-Lite routing shape, scale 0.125) and a markov predictor trained on law"
$bin model init --model deepseek-v2-lite --scale 0.125 -o "$tmp/moe" >/dev/null
$bin predict train -q -t traces/esft/law.parquet --kind markov -o "$tmp/markov.safetensors" >/dev/null
run() { $bin run --model-dir "$tmp/moe" --trace traces/sample.parquet --tokens "$tokens" --json "$@"; }
say "moeplan run on the GPU"
run --backend cuda --capacity 64 --policy lru >"$tmp/all.json"
run --backend cuda --capacity 16 --policy lru >"$tmp/lru.json"
run --backend cuda --capacity 16 --policy predictive --predictor "$tmp/markov.safetensors" >"$tmp/pred.json"
run --backend host --capacity 16 --policy lru >"$tmp/host.json"
python3 - "$tmp" <<'PY'
import json, sys
d = sys.argv[1]
rows = {n: json.load(open(f"{d}/{n}.json")) for n in ["all", "lru", "pred", "host"]}
print(f"{'run':<28} {'tokens/s':>9} {'hit':>7} {'bytes moved':>12} {'copy GB/s':>9} {'wait s':>8}  digest")
names = {"all": "cuda, all resident (64)", "lru": "cuda, lru 25% (16)", "pred": "cuda, predictive 25% (16)", "host": "host, lru 25% (16)"}
for k, r in rows.items():
    print(f"{names[k]:<28} {r['tokens_per_s']:>9.1f} {r['hit_ratio']:>7.4f} {r['bytes_moved']:>12} "
          f"{r['copy_bandwidth_gbps']:>9.2f} {r['wait_s']:>8.3f}  {r['output_digest']}")
same = len({r["output_digest"] for r in rows.values()}) == 1
print("outputs equal:", "yes" if same else "NO")
sys.exit(0 if same else 1)
PY
say "done"
