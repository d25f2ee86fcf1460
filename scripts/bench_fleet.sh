#!/usr/bin/env bash
# Scale benchmark of the statistics path (not a test): N synthetic DeepSeek-V3-shaped traces of
# T tokens each (58 MoE layers, 256 experts, top-8), aggregated natively (peak RSS, entries/s)
# and by Spark in local mode on the same machine; then `place` from the statistics of all of
# them against `place` from a 20k-token trace.
#
#   scripts/bench_fleet.sh [N=10] [T=1000000] [WORKDIR=/tmp/moeplan-fleet-bench]
set -euo pipefail
n=${1:-10}
tokens=${2:-1000000}
dir=${3:-/tmp/moeplan-fleet-bench}
bin=${MOEPLAN_BIN:-target/release/moeplan}
mkdir -p "$dir"
[ -x "$bin" ] || cargo build --release --bin moeplan
traces=()
for s in $(seq 1 "$n"); do
  f="$dir/v3-$s.parquet"
  [ -f "$f" ] || "$bin" -q trace synth --model deepseek-v3 --tokens "$tokens" --seed "$s" -o "$f"
  traces+=("$f")
done
[ -f "$dir/v3-20k.parquet" ] || "$bin" -q trace synth --model deepseek-v3 --tokens 20000 --seed 99 -o "$dir/v3-20k.parquet"
args=()
for f in "${traces[@]}"; do args+=(-t "$f"); done
echo "== native: trace aggregate ($n x $tokens tokens, window 65536)"
/usr/bin/time -v "$bin" trace aggregate "${args[@]}" --window 65536 -o "$dir/native.parquet" 2>"$dir/native.time" || { cat "$dir/native.time"; exit 1; }
grep -E "aggregated|Maximum resident|Elapsed" "$dir/native.time"
echo "== Spark local[*]"
start=$(date +%s.%N)
python3 scripts/spark/aggregate.py "${traces[@]}" --window 65536 -o "$dir/spark.parquet" 2>/dev/null
end=$(date +%s.%N)
echo "spark seconds: $(echo "$end - $start" | bc)"
echo "== place from the statistics of all tokens vs from 20k tokens"
for input in "--stats $dir/native.parquet" "-t $dir/v3-20k.parquet"; do
  start=$(date +%s.%N)
  # shellcheck disable=SC2086
  "$bin" -q place $input --model deepseek-v3 --hardware h100-8x-nvlink --method eplb --json >/dev/null
  end=$(date +%s.%N)
  echo "place $input: $(echo "$end - $start" | bc) s"
done
