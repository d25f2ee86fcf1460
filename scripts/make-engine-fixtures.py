#!/usr/bin/env python3
"""Writes tests/fixtures/engines/: what SGLang and vLLM record, made with the real torch.save and
numpy.save, for the tiny model tests/fixtures/engines/tiny-moe.toml (4 decoder layers, layer 0
dense, 8 experts, top-2), plus broken variants. Tests read the checked-in files; they never need
torch. Run once with torch and numpy installed: `python3 scripts/make-engine-fixtures.py`.

The structures copy what the engines write (sglang 0.5.23, vllm 0.33.0):
- sglang/srt/eplb/expert_distribution.py, _DetailAccumulator.dump / _DetailSinglePassGatherer
  (per_token) and _StatAccumulator.dump (stat);
- sglang/srt/state_capturer/*.py + managers/detokenizer_manager.py (routed experts: base64 of
  raw int32 [seqlen-1, num_hidden_layers, top_k], dense rows 0);
- vllm/utils/serial_utils.py numpy2base64 and RoutedExpertsCapturer (uint8 .npy).
The expected trace (logical ids per token) goes to *-expected.jsonl in moeplan's JSONL format.
"""

import base64
import io
import json
import os
import random
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "engines"
LAYERS, FIRST, EXPERTS, TOPK, PHYSICAL, WIDTH = 4, 1, 8, 2, 10, 8
SHAPE = {"moe_layers": LAYERS - FIRST, "experts": EXPERTS, "top_k": TOPK, "first_moe_layer": FIRST}


def phy2log():
    """[layers, physical] int64: slot p of layer l holds (p + l) % 8; slots 8, 9 replicate."""
    m = [[(p + l) % EXPERTS if p < EXPERTS else (l + p - EXPERTS) % EXPERTS for p in range(PHYSICAL)]
         for l in range(LAYERS)]
    return torch.tensor(m)  # torch.tensor of ints is int64, as in ExpertLocationMetadata


def route(seq, pos, layer):
    """Deterministic logical top-2 of token (seq, pos) at a decoder layer."""
    r = random.Random(seq * 1000003 + pos * 1009 + layer)
    return r.sample(range(EXPERTS), TOPK)


def physical_of(m, layer, logical, salt):
    slots = [p for p in range(PHYSICAL) if m[layer][p] == logical]
    return slots[salt % len(slots)]


# Forward passes as SGLang's scheduler runs them: (mode, [(seq, first_pos, count), ...]).
# Sequence 2 starts at position 3 (a prefix-cache hit); sequence 0's prompt is split in two
# extend chunks (chunked prefill).
PASSES = [
    (1, [(0, 0, 3), (1, 0, 2)]),        # EXTEND: two prompts
    (1, [(0, 3, 2)]),                   # EXTEND: second chunk of seq 0
    (2, [(0, 5, 1), (1, 2, 1)]),        # DECODE
    (1, [(2, 3, 2)]),                   # EXTEND: seq 2 after a cached prefix of 3 tokens
    (2, [(0, 6, 1), (1, 3, 1), (2, 5, 1)]),  # DECODE
    (2, [(1, 4, 1), (2, 6, 1)]),        # DECODE: seq 0 finished
]


def records(m, rank, mutate=None):
    recs = []
    for fp, (mode, reqs) in enumerate(PASSES):
        toks = [(s, p0 + i) for s, p0, n in reqs for i in range(n)]
        topk = torch.full((LAYERS, len(toks), WIDTH), -1, dtype=torch.int32)
        for t, (s, p) in enumerate(toks):
            for l in range(FIRST, LAYERS):
                for j, e in enumerate(route(s, p, l)):
                    topk[l, t, j] = physical_of(m, l, e, s + p + j)
        if mutate:
            topk = mutate(fp, topk)
        recs.append(dict(
            forward_pass_id=fp,
            rank=rank,
            gatherer_key="primary",
            input_ids=[100 + s * 10 + p for s, p in toks],
            positions=[p for _, p in toks],
            extend_seq_lens=[n for _, _, n in reqs] if mode == 1 else None,
            forward_mode=mode,
            topk_ids_of_layer=topk,
            misc_objects=[],
            global_physical_count=torch.zeros((LAYERS, PHYSICAL), dtype=torch.int32),
        ))
    return recs


def expected_per_token():
    """The trace moeplan should read: sequences in order of first appearance."""
    seqs = {}
    for _, reqs in PASSES:
        for s, p0, n in reqs:
            seqs.setdefault(s, []).extend(range(p0, p0 + n))
    lines = [json.dumps({"moeplan_trace": 1, "shape": SHAPE, "weights": False})]
    for s in sorted(seqs):
        for p in seqs[s]:
            lines.append(json.dumps({"seq": s, "pos": p,
                                     "experts": [route(s, p, l) for l in range(FIRST, LAYERS)]}))
    return "\n".join(lines) + "\n"


def dump(path, recs, m):
    torch.save(dict(records=recs, last_physical_to_logical_map=m), path)


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def main():
    if OUT.exists():
        for p in OUT.iterdir():
            if p.suffix in (".pt", ".npy") or p.name.endswith("-expected.jsonl") or p.is_dir() \
                    or p.name.startswith(("sglang-", "vllm-", "bad-")):
                shutil.rmtree(p) if p.is_dir() else p.unlink()
    OUT.mkdir(parents=True, exist_ok=True)
    m = phy2log()
    ml = m.tolist()

    # per_token: two tensor-parallel ranks that recorded the same tokens.
    tp = OUT / "sglang-tp"
    tp.mkdir()
    for rank in (0, 1):
        dump(tp / f"expert_distribution_recorder_1764620000.5_{rank}.pt", records(ml, rank), m)
    (OUT / "sglang-per-token-expected.jsonl").write_text(expected_per_token())
    shutil.copy(tp / "expert_distribution_recorder_1764620000.5_0.pt", OUT / "sglang-per-token.pt")

    # Ranks that disagree: rank 1's record 2 has another expert.
    dis = OUT / "bad-ranks-disagree"
    dis.mkdir()
    dump(dis / "expert_distribution_recorder_1764620000.5_0.pt", records(ml, 0), m)

    def flip(fp, t):
        if fp == 2:
            t = t.clone()
            t[1, 0, 0] = physical_of(ml, 1, (ml[1][int(t[1, 0, 0])] + 4) % EXPERTS, 0)
        return t
    dump(dis / "expert_distribution_recorder_1764620000.5_1.pt", records(ml, 1, flip), m)

    # Broken single files.
    def set_at(fp0, l, t0, j, v):
        def f(fp, t):
            if fp == fp0:
                t = t.clone()
                t[l, t0, j] = v
            return t
        return f
    dump(OUT / "bad-uncovered-id.pt", records(ml, 0, set_at(3, 2, 1, 0, 12)), m)
    dump(OUT / "bad-dense-routed.pt", records(ml, 0, set_at(0, 0, 0, 0, 3)), m)
    recs = records(ml, 0)
    recs[1]["topk_ids_of_layer"] = recs[1]["topk_ids_of_layer"].float()
    dump(OUT / "bad-float-topk.pt", recs, m)
    recs = records(ml, 0)
    recs[4]["topk_ids_of_layer"] = recs[4]["topk_ids_of_layer"][0]
    dump(OUT / "bad-2d-topk.pt", recs, m)
    recs = records(ml, 0)
    recs[0]["extend_seq_lens"] = [3, 3]
    dump(OUT / "bad-extend-lens.pt", recs, m)
    recs = records(ml, 0)
    recs[0]["evil"] = Evil()
    dump(OUT / "bad-global.pt", recs, m)
    good = (OUT / "sglang-per-token.pt").read_bytes()
    (OUT / "bad-truncated.pt").write_bytes(good[: len(good) // 2])
    corrupt = bytearray(good)
    at = corrupt.find(b"data.pkl") + 60  # inside the pickle's bytes
    corrupt[at:at + 16] = b"\xff" * 16
    (OUT / "bad-corrupt.pt").write_bytes(bytes(corrupt))

    # stat mode: logical_count int32 [buffer, layers, experts], rank 0 only.
    lc = torch.zeros((3, LAYERS, EXPERTS), dtype=torch.int32)
    for step, (_, reqs) in enumerate(PASSES[:3]):
        for s, p0, n in reqs:
            for p in range(p0, p0 + n):
                for l in range(FIRST, LAYERS):
                    for e in route(s, p, l):
                        lc[step, l, e] += 1
    torch.save(dict(rank=0, logical_count=lc, average_utilization_rate_over_window=None),
               OUT / "sglang-stat.pt")

    # Routed experts returned with responses: sequence s of n tokens -> n-1 rows.
    def routed(s, n):
        a = np.zeros((n - 1, LAYERS, TOPK), dtype=np.int32)
        for p in range(n - 1):
            for l in range(FIRST, LAYERS):
                a[p, l] = route(s + 10, p, l)
        return a
    lens = [5, 3, 4]
    sg = [
        {"text": "a", "meta_info": {"id": "r0", "routed_experts":
                                    base64.b64encode(routed(0, lens[0]).tobytes()).decode()}},
        {"id": "cmpl-1", "choices": [{"index": 0, "text": "b", "sglext": {"routed_experts":
                                     base64.b64encode(routed(1, lens[1]).tobytes()).decode()}}]},
    ]
    (OUT / "sglang-responses.jsonl").write_text("".join(json.dumps(r) + "\n" for r in sg))

    def npy_b64(a):
        buf = io.BytesIO()
        np.save(buf, a.astype(np.uint8), allow_pickle=False)
        return base64.b64encode(buf.getvalue()).decode()
    vl = [{"id": "cmpl-2", "choices": [{"index": 0, "text": "c",
                                        "routed_experts": npy_b64(routed(2, lens[2]))}]}]
    (OUT / "vllm-responses.jsonl").write_text("".join(json.dumps(r) + "\n" for r in vl))
    np.save(OUT / "vllm-routed.npy", routed(2, lens[2]).astype(np.uint8), allow_pickle=False)

    def expected(seqs):
        lines = [json.dumps({"moeplan_trace": 1, "shape": SHAPE, "weights": False})]
        for i, (s, n) in enumerate(seqs):
            for p in range(n - 1):
                lines.append(json.dumps({"seq": i, "pos": p, "experts":
                                         [route(s + 10, p, l) for l in range(FIRST, LAYERS)]}))
        return "\n".join(lines) + "\n"
    (OUT / "sglang-responses-expected.jsonl").write_text(expected([(0, 5), (1, 3)]))
    (OUT / "vllm-responses-expected.jsonl").write_text(expected([(2, 4)]))

    # Broken responses: a raw int32 that is not whole tokens, an .npy of the wrong layer count,
    # a response without routed experts, a dense row that is routed.
    raw = routed(0, 5).tobytes()
    bad = [
        {"meta_info": {"routed_experts": base64.b64encode(raw).decode()}},
        {"meta_info": {"routed_experts": base64.b64encode(raw[:-4]).decode()}},
    ]
    (OUT / "bad-responses-length.jsonl").write_text("".join(json.dumps(r) + "\n" for r in bad))
    np.save(OUT / "bad-routed-layers.npy", routed(2, 4)[:, 1:, :].astype(np.uint8))
    (OUT / "bad-responses-missing.jsonl").write_text(
        json.dumps({"meta_info": {"routed_experts": base64.b64encode(raw).decode()}}) + "\n"
        + json.dumps({"choices": [{"index": 0, "text": "no routing"}]}) + "\n")
    d = routed(0, 5)
    d[1, 0, 1] = 3
    (OUT / "bad-responses-dense.jsonl").write_text(
        json.dumps({"meta_info": {"routed_experts": base64.b64encode(d.tobytes()).decode()}}) + "\n")
    print(f"wrote {len(list(OUT.rglob('*')))} files under {OUT} with torch {torch.__version__}, "
          f"numpy {np.__version__}", file=sys.stderr)


if __name__ == "__main__":
    main()
