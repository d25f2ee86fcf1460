#!/usr/bin/env bash
# Scale benchmark of the statistics path (not a test): N synthetic DeepSeek-V3-shaped traces of
# T tokens each (58 MoE layers, 256 experts, top-8), aggregated natively (peak RSS, entries/s);
# native against Spark in local mode, one core each, on a 20k-token trace of the same shape
# (Spark needs hours for the full set on a small machine); then `place` from statistics against
# `place` from traces, at 20k and 100k tokens and from the statistics of all N x T tokens.
#
#   scripts/bench_fleet.sh [N=10] [T=1000000] [WORKDIR=/tmp/moeplan-fleet-bench]
#   MOEPLAN_BIN=path/to/moeplan (default target/release/moeplan), JOBS=2 (parallel generations),
#   SMALL=20000 (tokens of the small trace: Spark's comparison and place's baseline)
set -euo pipefail
n=${1:-10}
tokens=${2:-1000000}
dir=${3:-/tmp/moeplan-fleet-bench}
bin=${MOEPLAN_BIN:-target/release/moeplan}
jobs=${JOBS:-2}
small=${SMALL:-20000}
mkdir -p "$dir"
[ -x "$bin" ] || cargo build --release --bin moeplan
timed() { /usr/bin/time -f "%e s, peak RSS %M KB" "$@"; }
echo "== generating $n x $tokens tokens ($jobs at a time)"
seq 1 "$n" | xargs -P "$jobs" -I{} sh -c \
  "[ -f '$dir/v3-{}.parquet' ] || '$bin' -q trace synth --model deepseek-v3 --tokens $tokens --seed {} -o '$dir/v3-{}.parquet'"
[ -f "$dir/v3-small.parquet" ] || "$bin" -q trace synth --model deepseek-v3 --tokens "$small" --seed 99 -o "$dir/v3-small.parquet"
[ -f "$dir/v3-100k.parquet" ] || "$bin" -q trace synth --model deepseek-v3 --tokens 100000 --seed 98 -o "$dir/v3-100k.parquet"
args=()
for s in $(seq 1 "$n"); do args+=(-t "$dir/v3-$s.parquet"); done
echo "== native: trace aggregate ($n x $tokens tokens, window 65536)"
timed "$bin" trace aggregate "${args[@]}" --window 65536 -o "$dir/native.parquet" 2>&1 | tr '\r' '\n' | grep -E "aggregated|peak RSS"
echo "== native vs Spark local[1] on the $small-token trace"
timed "$bin" -q trace aggregate -t "$dir/v3-small.parquet" --window 65536 -o "$dir/native-small.parquet" 2>&1 | tail -1
timed python3 scripts/spark/aggregate.py "$dir/v3-small.parquet" --window 65536 --master 'local[1]' \
  --partitions 1 -o "$dir/spark-small.parquet" 2>&1 | tr '\r' '\n' | tail -1
python3 - "$dir/native-small.parquet" "$dir/spark-small.parquet" <<'PY'
import sys
import pyarrow.parquet as pq
a, b = (pq.read_table(p) for p in sys.argv[1:])
key = [(c, "ascending") for c in a.column_names]
meta = [{k: v for k, v in pq.read_metadata(p).metadata.items() if k.startswith(b"moeplan")} for p in sys.argv[1:]]
print(f"{a.num_rows} rows; same rows: {a.sort_by(key).equals(b.sort_by(key))}; same metadata: {meta[0] == meta[1]}")
PY
echo "== place (eplb) from statistics vs from traces"
"$bin" -q trace aggregate -t "$dir/v3-100k.parquet" --window 65536 -o "$dir/native-100k.parquet"
for input in "-t $dir/v3-small.parquet" "--stats $dir/native-small.parquet" "-t $dir/v3-100k.parquet" \
  "--stats $dir/native-100k.parquet" "--stats $dir/native.parquet"; do
  # shellcheck disable=SC2086
  timed "$bin" -q place $input --model deepseek-v3 --hardware h100-8x-nvlink --method eplb --json 2>&1 >/dev/null \
    | sed "s|^|place $input: |"
done
