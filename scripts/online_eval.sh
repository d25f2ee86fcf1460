#!/usr/bin/env bash
# Leave-one-task-out figures of docs/online.md: offline vs online (prequential) recall, the cold
# start, the cache with an online predictor, and re-balancing over the stream
# intent -> law -> summary. Usage: scripts/online_eval.sh [moeplan binary] [output dir]
set -euo pipefail
bin=${1:-target/release/moeplan}
out=${2:-target/online-eval}
mkdir -p "$out"
tasks=(intent law summary)
for held in "${tasks[@]}"; do
  train=()
  for t in "${tasks[@]}"; do [ "$t" != "$held" ] && train+=(-t "traces/esft/$t.parquet"); done
  "$bin" -q predict train "${train[@]}" --kind mix --lookahead 2 -o "$out/mix-no-$held.safetensors"
  "$bin" predict eval --predictor "$out/mix-no-$held.safetensors" -t "traces/esft/$held.parquet" \
    --lookahead 1 --json > "$out/eval-offline-$held.json"
  "$bin" predict eval --predictor "$out/mix-no-$held.safetensors" -t "traces/esft/$held.parquet" \
    --lookahead 1 --online --json > "$out/eval-online-$held.json"
  "$bin" predict eval --predictor none --online --warmup 1000 -t "traces/esft/$held.parquet" \
    --lookahead 1 --json > "$out/eval-cold-$held.json"
  tt=()
  for t in "${tasks[@]}"; do [ "$t" != "$held" ] && tt+=(--train-trace "traces/esft/$t.parquet"); done
  "$bin" replay -t "traces/esft/$held.parquet" "${tt[@]}" --capacity 16 \
    --predictor "$out/mix-no-$held.safetensors" --policy lru,lfu,predictive,opt --json \
    > "$out/replay-offline-$held.json"
  "$bin" replay -t "traces/esft/$held.parquet" "${tt[@]}" --capacity 16 \
    --predictor "$out/mix-no-$held.safetensors" --policy predictive --online --json \
    > "$out/replay-online-$held.json"
  # The learned model, offline and online (its markov feature from the live counts).
  "$bin" -q predict train "${train[@]}" --kind learned --lookahead 2 -o "$out/learned-no-$held.safetensors"
  for mode in offline online; do
    flag=(); [ "$mode" = online ] && flag=(--online)
    "$bin" predict eval --predictor "$out/learned-no-$held.safetensors" -t "traces/esft/$held.parquet" \
      --lookahead 1 "${flag[@]}" --json > "$out/eval-learned-$mode-$held.json"
    "$bin" replay -t "traces/esft/$held.parquet" "${tt[@]}" --capacity 16 \
      --predictor "$out/learned-no-$held.safetensors" --policy predictive "${flag[@]}" --json \
      > "$out/replay-learned-$mode-$held.json"
  done
done
"$bin" rebalance -t traces/esft/intent.parquet -t traces/esft/law.parquet -t traces/esft/summary.parquet \
  --model deepseek-v2-lite --hardware h100-8x-nvlink --window 1000 --json > "$out/rebalance.json"
python3 - "$out" <<'PY'
import json, sys
d = sys.argv[1]
for held in ["intent", "law", "summary"]:
    off = json.load(open(f"{d}/eval-offline-{held}.json"))
    on = json.load(open(f"{d}/eval-online-{held}.json"))
    cold = json.load(open(f"{d}/eval-cold-{held}.json"))
    def row(r, n):
        p = [x for x in r["predictors"] if x["name"] == n][0]["recall"]["1"]
        return f'{p["6"]:.3f}/{p["12"]:.3f}'
    print(held, "offline", {n: row(off, n) for n in ["static", "markov", "mix"]},
          "online", {n: row(on, n) for n in ["static", "markov", "mix"]},
          "cold", {n: row(cold, n) for n in ["static", "markov", "mix"]})
    ro = {p["name"]: p for p in json.load(open(f"{d}/replay-offline-{held}.json"))["policies"]}
    rn = json.load(open(f"{d}/replay-online-{held}.json"))["policies"][0]
    lru, opt = ro["lru"]["hit_ratio"], ro["opt"]["hit_ratio"]
    for name, p in [("predictive", ro["predictive"]), ("predictive --online", rn), ("lfu", ro["lfu"])]:
        gap = (p["hit_ratio"] - lru) / (opt - lru)
        print(f'  {name}: hit {p["hit_ratio"]:.3f} gap closed {gap:.2f} loads/token {p["loads_per_token"]:.2f}')
    print(f'  lru {lru:.3f} opt {opt:.3f}')
    for mode in ["offline", "online"]:
        ev = json.load(open(f"{d}/eval-learned-{mode}-{held}.json"))
        rp = json.load(open(f"{d}/replay-learned-{mode}-{held}.json"))["policies"][0]
        gap = (rp["hit_ratio"] - lru) / (opt - lru)
        print(f'  learned {mode}: recall {row(ev, "learned")} predictive hit {rp["hit_ratio"]:.3f} '
              f'gap closed {gap:.2f} loads/token {rp["loads_per_token"]:.2f}')
r = json.load(open(f"{d}/rebalance.json"))
for p in r["policies"]:
    print(p["name"], {k: round(p[k], 4) for k in ["mean_ir", "worst_ir", "mean_hop", "a2a_bytes_per_token", "mean_layer_ms", "moves_per_rebalance", "replan_seconds"]}, p["rebalances"])
PY
