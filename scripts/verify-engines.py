#!/usr/bin/env python3
"""Checks moeplan's engine files against the engines' own code, run by hand (not in CI).

Needs: torch, numpy, and sglang installed without its GPU dependencies
(`pip install --no-deps sglang==0.5.23` plus the few pure-Python modules its expert-location
module imports: orjson psutil pybase64 requests packaging pillow starlette msgspec pydantic pyzmq
tqdm IPython aiohttp). vLLM is not imported: its routed-experts format is checked with the decode
its own protocol documents (vllm/entrypoints/openai/completion/protocol.py: `np.load(io.BytesIO(
base64.b64decode(s)))`).

    cargo build && python3 scripts/verify-engines.py [--moeplan target/debug/moeplan]

What it does, each step printing what it found:
1. imports the SGLang per-token dump fixture with moeplan, plans it (EPLB, 2 GPUs, 2 redundant
   slots), exports `--to sglang`, and loads the JSON with SGLang's own
   `compute_initial_expert_location_metadata` once per EP rank: every rank must see the plan's
   physical-to-logical map, and GPU g the experts the plan puts on it;
2. exports `--to kt` (.pt) and `--to sglang-counts`, loads the .pt with
   `torch.load(weights_only=True)` and both with SGLang's loader (init_by_eplb);
3. decodes the routed-expert fixtures with SGLang's `extract_routed_experts_from_meta_info` and
   vLLM's documented decode, and compares with what moeplan reads from them;
4. re-reads the per-token fixture with torch.load and compares its logical ids with moeplan's.
"""

import argparse
import base64
import io
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
FX = ROOT / "tests" / "fixtures" / "engines"
MODEL = FX / "tiny-moe.toml"
HW = FX / "two-gpus.toml"
LAYERS, FIRST, EXPERTS, TOPK = 4, 1, 8, 2
failures = []


def check(ok, what):
    print(("PASS " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def run(moeplan, *args):
    r = subprocess.run([moeplan, *map(str, args)], capture_output=True, text=True, cwd=ROOT)
    if r.returncode != 0:
        print(r.stderr)
        raise SystemExit(f"moeplan {' '.join(map(str, args))} failed")
    return r.stdout


def moeplan_trace(moeplan, path, tmp):
    out = Path(tmp) / (Path(path).stem + ".jsonl")
    run(moeplan, "trace", "import", "-t", path, "--model", MODEL, "-o", out)
    lines = out.read_text().splitlines()[1:]
    return [json.loads(l) for l in lines]


def sglang_loader(init_expert_location, ep_size, redundant):
    """SGLang's compute_initial_expert_location_metadata with its run-time context stubbed."""
    import sglang.srt.eplb.expert_location as el

    moe = SimpleNamespace(init_expert_location=str(init_expert_location),
                          ep_num_redundant_experts=redundant, ep_dispatch_algorithm="static",
                          eplb_algorithm="auto", ep_join_mode=None,
                          moe_a2a_backend="none")  # ServerArgs default: no a2a backend
    el.get_exec = lambda: SimpleNamespace(moe=moe)
    el.get_parallel = lambda: SimpleNamespace(ep_size=ep_size, elastic_ep_initial_size=None,
                                              nnodes=1, tp_size=ep_size)
    el.get_device = lambda: SimpleNamespace(device="cpu")
    try:
        from sglang.srt.models.deepseek_v2 import DeepseekV2ForCausalLM
        hf = SimpleNamespace(num_hidden_layers=LAYERS, n_routed_experts=EXPERTS, n_group=1)
        cfg = DeepseekV2ForCausalLM.get_model_config_for_expert_location(hf)
        how = "DeepseekV2ForCausalLM.get_model_config_for_expert_location"
    except Exception as e:  # the model module needs GPU-only packages
        cfg = el.ModelConfigForExpertLocation(num_layers=LAYERS, num_logical_experts=EXPERTS,
                                              num_groups=1)
        how = f"ModelConfigForExpertLocation directly (deepseek_v2 import: {type(e).__name__})"
    el.ModelConfigForExpertLocation.from_model_config = staticmethod(lambda _mc: cfg)
    return el, how


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--moeplan", default=str(ROOT / "target" / "debug" / "moeplan"))
    a = ap.parse_args()
    import sglang
    print(f"torch {torch.__version__}, numpy {np.__version__}, sglang {sglang.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # 1. plan -> SGLang JSON -> SGLang's loader
        pq = tmp / "served.parquet"
        run(a.moeplan, "trace", "import", "-t", FX / "sglang-tp", "--model", MODEL, "-o", pq)
        plan = tmp / "plan.json"
        run(a.moeplan, "place", "-q", "-t", pq, "--model", MODEL, "--hardware", HW,
            "--method", "eplb", "-o", plan)
        loc = tmp / "placement.json"
        print(run(a.moeplan, "export", "--plan", plan, "--model", MODEL, "--to", "sglang",
                     "-o", loc), end="")
        p = json.loads(plan.read_text())
        gpus, slots = p["gpus"], p["slots_per_gpu"]
        redundant = gpus * slots - p["experts"]
        el, how = sglang_loader(loc, gpus, redundant)
        print(f"SGLang model config via {how}")
        for rank in range(gpus):
            md = el.compute_initial_expert_location_metadata(None, moe_ep_rank=rank)
            got = md.physical_to_logical_map_cpu.tolist()
            want = json.loads(loc.read_text())["physical_to_logical_map"]
            check(got == want, f"rank {rank}: SGLang's physical_to_logical_map equals the export")
            for l, row in enumerate(p["physical_to_logical_map"]):
                mine = row[rank * slots:(rank + 1) * slots]
                theirs = got[FIRST + l][rank * md.num_local_physical_experts:
                                        (rank + 1) * md.num_local_physical_experts]
                if mine != theirs:
                    check(False, f"rank {rank} layer {l}: GPU holds {theirs}, plan says {mine}")
                    break
            else:
                check(True, f"rank {rank}: GPU {rank} holds the plan's experts in all "
                            f"{len(p['physical_to_logical_map'])} MoE layers")
        # 2. kt .pt and sglang-counts
        kt = tmp / "counts.pt"
        print(run(a.moeplan, "export", "--to", "kt", "-t", pq, "--model", MODEL,
                  "--gpu-experts", 2, "-o", kt), end="")
        d = torch.load(kt, weights_only=True, map_location="cpu")
        lc = d["logical_count"]
        check(lc.dtype == torch.int32 and list(lc.shape) == [1, LAYERS, EXPERTS],
              f"torch.load(weights_only=True) of the kt .pt: {lc.dtype} {list(lc.shape)}")
        counts = tmp / "counts.json"
        run(a.moeplan, "export", "--to", "sglang-counts", "-t", pq, "--model", MODEL, "-o", counts)
        check(json.loads(counts.read_text())["logical_count"] == lc[0].tolist(),
              "sglang-counts JSON and the kt .pt hold the same counts")
        if not torch.distributed.is_initialized():
            # init_by_eplb all-reduces the counts: a one-process CPU group stands for the ranks.
            torch.distributed.init_process_group("gloo", init_method="tcp://127.0.0.1:29517",
                                                 rank=0, world_size=1)
        for f in (kt, counts):
            try:
                el, _ = sglang_loader(f, gpus, redundant)
                md = el.compute_initial_expert_location_metadata(None, moe_ep_rank=0)
                check(list(md.physical_to_logical_map.shape) == [LAYERS, gpus * slots],
                      f"SGLang init_by_eplb on {f.name}: map {list(md.physical_to_logical_map.shape)}")
            except Exception as e:
                check(False, f"SGLang init_by_eplb on {f.name}: {type(e).__name__}: {e}")
        # 3. routed experts: the engines' decoders vs moeplan
        from sglang.srt.state_capturer.routed_experts import extract_routed_experts_from_meta_info
        ours = moeplan_trace(a.moeplan, FX / "sglang-responses.jsonl", tmp)
        resp = [json.loads(l) for l in (FX / "sglang-responses.jsonl").read_text().splitlines()]
        arr0 = extract_routed_experts_from_meta_info(resp[0]).reshape(-1, LAYERS, TOPK)
        b64 = resp[1]["choices"][0]["sglext"]["routed_experts"]
        arr1 = extract_routed_experts_from_meta_info({"meta_info": {"routed_experts": b64}})
        arr1 = arr1.reshape(-1, LAYERS, TOPK)
        theirs = [r[FIRST:].tolist() for a_ in (arr0, arr1) for r in a_]
        check(theirs == [t["experts"] for t in ours],
              f"SGLang extract_routed_experts_from_meta_info == moeplan on {len(theirs)} tokens")
        ours = moeplan_trace(a.moeplan, FX / "vllm-responses.jsonl", tmp)
        s = json.loads((FX / "vllm-responses.jsonl").read_text())["choices"][0]["routed_experts"]
        arr = np.load(io.BytesIO(base64.b64decode(s)))
        check(arr.dtype == np.uint8 and [r[FIRST:].tolist() for r in arr] == [t["experts"] for t in ours],
              f"vLLM's documented decode ({arr.dtype} {list(arr.shape)}) == moeplan")
        # 4. the per-token dump through torch.load vs moeplan
        ours = moeplan_trace(a.moeplan, FX / "sglang-per-token.pt", tmp)
        d = torch.load(FX / "sglang-per-token.pt", weights_only=True)
        m = d["last_physical_to_logical_map"]
        ids = sorted(
            (tuple(m[l][int(x)].item() for x in rec["topk_ids_of_layer"][l, t, :TOPK])
             for rec in d["records"] for t in range(len(rec["input_ids"]))
             for l in range(FIRST, LAYERS)))
        mine = sorted(tuple(e) for t in ours for e in t["experts"])
        check(ids == mine, f"torch.load of the per-token dump: {len(ids)} (token, layer) top-k "
                           "sets, the same multiset moeplan reads")
    print(f"{'FAILED: ' + str(len(failures)) if failures else 'all checks passed'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
