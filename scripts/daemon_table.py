"""Median table of `moeplan bench daemon --json` runs: reads lines `LABEL<TAB>JSON` (several per
label, one per round) and prints one markdown row per label, in first-seen order. Used by
scripts/daemon_load_ab.sh and scripts/daemon_latency.sh."""
import json
import statistics
import sys


def main(path):
    rows = {}
    for line in open(path):
        label, doc = line.rstrip("\n").split("\t", 1)
        rows.setdefault(label, []).append(json.loads(doc))
    print("| configuration | steps/s | p50 us | p99 us | p99.9 us | max us | unsent | client held up (ms, count) | rounds |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, rs in rows.items():
        def med(key):
            vals = [r[key] for r in rs if r.get(key) is not None]
            return statistics.median(vals) if vals else float("nan")
        stalls = [r["client_stalls"] for r in rs if r.get("client_stalls")]
        held = "-"
        if stalls:
            held = (f"{statistics.median(s['total_ms'] for s in stalls):.1f}, "
                    f"{statistics.median(s['count'] for s in stalls):.0f}")
        unsent = [r["unsent_due"] for r in rs if r.get("unsent_due") is not None]
        unsent = f"{statistics.median(unsent):,.0f}" if unsent else "-"
        print(f"| {label} | {med('steps_per_s'):,.0f} | {med('p50_us'):.0f} | {med('p99_us'):,.0f} | "
              f"{med('p999_us'):,.0f} | {med('max_us'):,.0f} | {unsent} | {held} | {len(rs)} |")


if __name__ == "__main__":
    main(sys.argv[1])
