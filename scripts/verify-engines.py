#!/usr/bin/env python3
"""Checks moeplan's engine files against the engines' own code, run by hand (not in CI).

Needs: torch, numpy, and sglang installed without its GPU dependencies
(`pip install --no-deps sglang==0.5.23`) plus the pure-Python modules its import chains ask for:
orjson psutil pybase64 requests packaging pillow starlette msgspec pydantic pyzmq tqdm IPython
aiohttp (sglang.srt.eplb.expert_location); transformers torchvision dill apache-tvm-ffi
sentencepiece compressed-tensors gguf (sglang.srt.state_capturer.routed_experts); setproctitle
openai partial_json_parser fastapi uvloop uvicorn einops (sglang.srt.managers.detokenizer_manager).
vLLM is not installed (its package is built for CUDA). With `--vllm-wheel`
(from `pip download --no-deps vllm==0.33.0`) the two modules that make its `routed_experts` field
run from the wheel's source, their vllm imports stubbed; without it the field is checked with the
decode vLLM documents next to it (`np.load(io.BytesIO(base64.b64decode(s)))`).

    cargo build && python3 scripts/verify-engines.py [--moeplan target/debug/moeplan] \
        [--vllm-wheel vllm-0.33.0-cp38-abi3-manylinux_2_28_x86_64.whl]

What it does, each step printing PASS or FAIL lines:
1. imports the SGLang per-token dump fixture with moeplan, plans it (EPLB, 2 GPUs, 2 redundant
   slots), exports `--to sglang`, and loads the JSON with SGLang's own
   `compute_initial_expert_location_metadata` once per EP rank: every rank must see the plan's
   physical-to-logical map, and GPU g the experts the plan puts on it;
2. exports `--to kt` (.pt) and `--to sglang-counts`, loads the .pt with
   `torch.load(weights_only=True)` and both with SGLang's loader (init_by_eplb);
3. decodes the routed-experts fixtures with SGLang's `extract_routed_experts_from_meta_info` and
   vLLM's documented decode and compares, token by token and layer by layer, with what moeplan
   reads from them; encodes the expected routes with SGLang's
   `DetokenizerManager._b64_encode_per_request` and vLLM's `RoutedExpertsCapturer` +
   `numpy2base64`, which must give the fixtures' bytes, and has moeplan read vLLM's own uint8
   and uint16 (more than 256 experts) output, as a response and as an .npy;
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
    out = Path(tmp) / ("moeplan-" + Path(path).name + ".jsonl")
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


def expected_rows(name):
    """The routes a fixture holds, from its *-expected.jsonl: one int32 array [tokens, LAYERS,
    TOPK] per sequence, the dense layers' rows 0, as the engines' host buffers hold them."""
    seqs = {}
    for line in (FX / name).read_text().splitlines()[1:]:
        t = json.loads(line)
        seqs.setdefault(t["seq"], []).append([[0] * TOPK] * FIRST + t["experts"])
    return [np.array(v, dtype=np.int32) for _, v in sorted(seqs.items())]


def first_difference(fixture, theirs, ours):
    """None when moeplan's tokens (its JSONL records) hold the ids of the engine's arrays
    (one [tokens, LAYERS, TOPK] array per sequence), else where they first differ."""
    rows = [(i, p, r) for i, a in enumerate(theirs) for p, r in enumerate(a.tolist())]
    if len(rows) != len(ours):
        return f"{fixture}: the engine's decode has {len(rows)} tokens, moeplan {len(ours)}"
    for (i, p, r), t in zip(rows, ours):
        if (t["seq"], t["pos"]) != (i, p):
            return f"{fixture}: token (seq {i}, pos {p}) is (seq {t['seq']}, pos {t['pos']}) in moeplan"
        for l in range(FIRST, LAYERS):
            if [int(x) for x in r[l]] != t["experts"][l - FIRST]:
                return (f"{fixture}: seq {i} token {p} layer {l}: engine {r[l]}, "
                        f"moeplan {t['experts'][l - FIRST]}")
    return None


def step3_sglang(moeplan, tmp):
    # sglang/srt/state_capturer/routed_experts.py, extract_routed_experts_from_meta_info(data):
    # np.frombuffer(pybase64.b64decode(data["meta_info"]["routed_experts"]), dtype=np.int32), a
    # flat array without shape that the caller reshapes to [tokens, num_hidden_layers, top_k].
    # It reads `meta_info` (the /generate response); the OpenAI-compatible response carries the
    # same string at choices[i].sglext.routed_experts, handed to it as meta_info here.
    from sglang.srt.state_capturer.routed_experts import extract_routed_experts_from_meta_info
    # sglang/srt/managers/detokenizer_manager.py, DetokenizerManager._b64_encode_per_request
    # (a staticmethod): pybase64.b64encode(item.numpy().tobytes()) for each request's int32
    # [tokens, num_hidden_layers, top_k] rows, the string the responses carry.
    from sglang.srt.managers.detokenizer_manager import DetokenizerManager

    fx = "sglang-responses.jsonl"
    resp = [json.loads(l) for l in (FX / fx).read_text().splitlines()]
    strings = [resp[0]["meta_info"]["routed_experts"],
               resp[1]["choices"][0]["sglext"]["routed_experts"]]
    flat = [extract_routed_experts_from_meta_info(resp[0]),
            extract_routed_experts_from_meta_info({"meta_info": {"routed_experts": strings[1]}})]
    theirs = [f.reshape(-1, LAYERS, TOPK) for f in flat]
    ours = moeplan_trace(moeplan, FX / fx, tmp)
    diff = first_difference(fx, theirs, ours)
    check(diff is None, diff or
          f"SGLang extract_routed_experts_from_meta_info on {fx} ({flat[0].dtype}, "
          f"{' and '.join(str(f.size) for f in flat)} values -> "
          f"{' and '.join(str(list(t.shape)) for t in theirs)}) == moeplan on {len(ours)} tokens")
    want = expected_rows("sglang-responses-expected.jsonl")
    enc = DetokenizerManager._b64_encode_per_request([torch.from_numpy(x) for x in want])
    for i, (e, f) in enumerate(zip(enc, strings)):
        check(e == f, f"SGLang DetokenizerManager._b64_encode_per_request of sequence {i}'s "
                      f"expected routes == {fx} line {i + 1} byte for byte")


def vllm_source(wheel, relpath, stubs):
    """Runs one module of the vLLM wheel from its source text, the vllm modules it imports
    replaced by `stubs` (name -> attributes); the wheel is never installed or imported."""
    import types
    import zipfile

    with zipfile.ZipFile(wheel) as z:
        src = z.read(relpath).decode()
    name = relpath[:-3].replace("/", ".")
    mods = {k: types.ModuleType(k) for k in stubs}
    for k, attrs in stubs.items():
        mods[k].__dict__.update(attrs)
    mod = types.ModuleType(name)
    mod.__file__ = f"{wheel}/{relpath}"
    mods[name] = mod
    saved = {k: sys.modules.get(k) for k in mods}
    sys.modules.update(mods)
    try:
        exec(compile(src, mod.__file__, "exec"), mod.__dict__)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    return mod


def step3_vllm(moeplan, tmp, wheel):
    fx = "vllm-responses.jsonl"
    s = json.loads((FX / fx).read_text())["choices"][0]["routed_experts"]
    want = expected_rows("vllm-responses-expected.jsonl")
    ours = moeplan_trace(moeplan, FX / fx, tmp)
    # The decode vLLM documents next to the field (vllm/entrypoints/openai/completion/protocol.py
    # and chat_completion/protocol.py, `routed_experts`): np.load(io.BytesIO(base64.b64decode(s))).
    arr = np.load(io.BytesIO(base64.b64decode(s)))
    diff = first_difference(fx, [arr], ours)
    check(arr.dtype == np.uint8 and diff is None, diff or
          f"vLLM's documented decode of {fx} ({arr.dtype} {list(arr.shape)}) == moeplan on "
          f"{len(ours)} tokens")
    npy = FX / "vllm-routed.npy"
    diff = first_difference(npy.name, [np.load(npy)], moeplan_trace(moeplan, npy, tmp))
    check(diff is None, diff or f"np.load of {npy.name} == moeplan")
    if not wheel:
        print("SKIP vLLM's own RoutedExpertsCapturer and numpy2base64: no --vllm-wheel "
              "(`pip download --no-deps vllm==0.33.0`)")
        return
    # vLLM is not installed (its package is built for CUDA); the two modules that make the
    # field run from the wheel's source on CPU:
    # - vllm/model_executor/layers/fused_moe/routed_experts_capturer.py, RoutedExpertsCapturer:
    #   capture(layer_id, topk_ids) writes each MoE layer's ids into an int32 device buffer
    #   [tokens, num_hidden_layers, top_k] (dense layers stay 0); snapshot_routing_data(n) casts
    #   it to uint8 when num_experts <= 256, else uint16. Its vllm imports (config, forward
    #   context, TP group, platform, ubatching) are stubbed: one DP rank, TP 1, CPU, no ubatch.
    # - vllm/utils/serial_utils.py, numpy2base64: base64 of np.save(..., allow_pickle=False);
    #   the OpenAI servers (completion/serving.py, chat_completion/serving.py) send
    #   numpy2base64(output.routed_experts) as `routed_experts`.
    # Its imports are numpy, pybase64 and torch only.
    su = vllm_source(wheel, "vllm/utils/serial_utils.py", {})
    ctx = SimpleNamespace(dp_metadata=None, batch_descriptor=None)
    rec = vllm_source(wheel, "vllm/model_executor/layers/fused_moe/routed_experts_capturer.py", {
        "vllm.config": dict(VllmConfig=object),
        "vllm.distributed.parallel_state": dict(get_tp_group=lambda: None),
        "vllm.forward_context": dict(ForwardContext=object, get_forward_context=lambda: ctx),
        "vllm.model_executor.layers.fused_moe.config": dict(FusedMoEConfig=object),
        "vllm.platforms": dict(current_platform=SimpleNamespace(device_type="cpu")),
        "vllm.v1.worker.ubatching": dict(dbo_current_ubatch_token_offset=lambda: 0),
    })
    print(f"vLLM modules run from {Path(wheel).name}: {su.__name__}, {rec.__name__}")

    def encode(rows, experts):
        mc = SimpleNamespace(get_total_num_hidden_layers=lambda: LAYERS,
                             get_num_experts=lambda: experts,
                             get_num_experts_per_tok=lambda: TOPK,
                             hf_text_config=SimpleNamespace(model_type="deepseek_v3"))
        cfg = SimpleNamespace(model_config=mc, parallel_config=SimpleNamespace(
            data_parallel_rank=0, tensor_parallel_size=1))
        cap = rec.RoutedExpertsCapturer(max_num_batched_tokens=16, vllm_config=cfg)
        for l in range(FIRST, LAYERS):  # one forward pass of the sequence's tokens
            cap.capture(l, torch.from_numpy(np.ascontiguousarray(rows[:, l, :])))
        out = cap.snapshot_routing_data(len(rows)).cpu().numpy()
        return out, su.numpy2base64(out)

    out, enc = encode(want[0], EXPERTS)
    check(out.dtype == np.uint8 and enc == s,
          f"vLLM RoutedExpertsCapturer + numpy2base64 of the expected routes ({out.dtype} "
          f"{list(out.shape)}) == {fx} byte for byte")
    check(base64.b64decode(enc) == npy.read_bytes(),
          f"the .npy inside vLLM's string == {npy.name} byte for byte")
    for experts in (EXPERTS, 300):  # 300 > 256: vLLM sends uint16
        out, enc = encode(want[0], experts)
        f = tmp / f"vllm-own-{out.dtype}.jsonl"
        f.write_text(json.dumps({"id": "cmpl-x", "choices": [
            {"index": 0, "text": "c", "routed_experts": enc}]}) + "\n")
        g = tmp / f"vllm-own-{out.dtype}.npy"
        g.write_bytes(base64.b64decode(enc))
        for path in (f, g):
            ours = moeplan_trace(moeplan, path, tmp)
            diff = first_difference(path.name, want, ours)
            check(diff is None, diff or
                  f"moeplan reads vLLM's own {out.dtype} output (num_experts={experts}) as "
                  f"{'a response' if path.suffix == '.jsonl' else 'an .npy'}: {len(ours)} tokens, "
                  "the expected routes")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--moeplan", default=str(ROOT / "target" / "debug" / "moeplan"))
    ap.add_argument("--vllm-wheel", help="vllm-0.33.0-*.whl from `pip download --no-deps "
                    "vllm==0.33.0`: runs vLLM's own encoder from its source")
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
        # 3. routed experts: the engines' own decode and encode vs moeplan
        step3_sglang(a.moeplan, tmp)
        step3_vllm(a.moeplan, tmp, a.vllm_wheel)
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
