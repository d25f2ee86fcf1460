import json,sys
import os
OUT = os.environ.get("OUT", ".")
print("| held out | method | IR mean in / eval | IR worst eval | H in / eval | H top-1 eval | proxy eval | ILP gap |")
print("|---|---|---|---|---|---|---|---|")
for held in ["intent","law","summary"]:
    rows=json.load(open(f"{OUT}/loto-{held}.json"))["methods"]
    try:
        c0=json.load(open(f"{OUT}/loto-{held}-c0.json"))["methods"][0]; c0["name"]="ilp, comm 0"; rows.append(c0)
    except Exception: pass
    for r in rows:
        i,e=r["in_sample"],r["eval"]
        gap = f'{100*r["solver"]["gap"]:.1f}%' if r.get("solver") else "-"
        print(f'| {held} | {r["name"]} | {i["ir_mean"]:.3f} / {e["ir_mean"]:.3f} | {e["ir_worst"]:.3f} | {i["hop_rate"]:.3f} / {e["hop_rate"]:.3f} | {e["hop_rate_top1"]:.3f} | {e["layer_time_proxy"]:.2f} | {gap} |')
