#!/bin/sh
# Leave-one-task-out on the three ESFT tasks: build on two, --eval on the third.
B=${BIN:-moeplan}
for held in intent law summary; do
  set --
  for t in intent law summary; do [ $t = $held ] || set -- "$@" -t traces/esft/$t.parquet; done
  $B place "$@" --eval traces/esft/$held.parquet --model deepseek-v2-lite --hardware h100-8x-nvlink \
     --method all --time-limit 20 --json -q > ${OUT:-.}/loto-$held.json
  $B place "$@" --eval traces/esft/$held.parquet --model deepseek-v2-lite --hardware h100-8x-nvlink \
     --method ilp --comm-weight 0 --time-limit 20 --json -q > ${OUT:-.}/loto-$held-c0.json
  $B place "$@" --eval traces/esft/$held.parquet --model deepseek-v2-lite --hardware h100-8x-nvlink \
     --method ilp --splits 8 --time-limit 20 --json -q > ${OUT:-.}/loto-$held-s8.json
done
# Table: python3 scripts/loto-table.py (reads the JSON files written above).
