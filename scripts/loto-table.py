import json,sys
import os
OUT = os.environ.get("OUT", ".")
print("| held out | method | IR mean in / eval | IR worst eval | H in / eval | H top-1 eval | proxy eval | a2a KiB/token eval | ILP gap |")
print("|---|---|---|---|---|---|---|---|---|")
for held in ["intent","law","summary"]:
    rows=json.load(open(f"{OUT}/loto-{held}.json"))["methods"]
    for suffix, name in [("c0", "ilp, comm 0"), ("s8", "ilp, splits 8")]:
        try:
            r=json.load(open(f"{OUT}/loto-{held}-{suffix}.json"))["methods"][0]; r["name"]=name; rows.append(r)
        except FileNotFoundError: pass
    for r in rows:
        i,e=r["in_sample"],r["eval"]
        gap = f'{100*r["solver"]["gap"]:.1f}%' if r.get("solver") else "-"
        print(f'| {held} | {r["name"]} | {i["ir_mean"]:.3f} / {e["ir_mean"]:.3f} | {e["ir_worst"]:.3f} | {i["hop_rate"]:.3f} / {e["hop_rate"]:.3f} | {e["hop_rate_top1"]:.3f} | {e["layer_time_proxy"]:.2f} | {e["a2a_bytes_per_token"]/1024:.0f} | {gap} |')
