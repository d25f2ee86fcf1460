"""Writes seed inputs for the frame_decoder fuzz target: valid request frames of every op (one
per file, and all of them in one stream) into fuzz/corpus/frame_decoder/."""

import os
import struct

import msgpack

REQUESTS = [
    {"id": 1, "op": "hello", "args": {"version": 1, "client": "seed", "token": None}},
    {"id": 2, "op": "register", "args": {"moe_layers": 4, "experts": 16, "top_k": 2, "capacity": 4,
                                          "policy": "predictive", "predictor": "/tmp/p", "plan": "/tmp/q", "gpu": 1}},
    {"id": 3, "op": "step", "args": {"session": 1, "layer": 2, "experts": [1, 5], "next_scores": [0.5] * 16,
                                      "keep_pins": True, "prefetch": 0,
                                      "routing": {"seqs": [7], "experts": [1, 5], "weights": [0.7, 0.3]}}},
    {"id": 4, "op": "loaded", "args": {"session": 1, "layer": 2, "experts": [5]}},
    {"id": 5, "op": "prefetch", "args": {"session": 1, "max": 4, "release": True}},
    {"id": 6, "op": "observe", "args": {"session": 1, "layer": 0, "experts": [1], "counts": [3]}},
    {"id": 7, "op": "stats", "args": {"session": None}},
    {"id": 8, "op": "close", "args": {"session": 1}},
]


def frame(msg: dict) -> bytes:
    body = msgpack.packb(msg, use_bin_type=True)
    return struct.pack(">I", len(body)) + body


def main() -> None:
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "frame_decoder")
    os.makedirs(out, exist_ok=True)
    for r in REQUESTS:
        with open(os.path.join(out, "seed-%s" % r["op"]), "wb") as f:
            f.write(frame(r))
    with open(os.path.join(out, "seed-stream"), "wb") as f:
        f.write(b"".join(frame(r) for r in REQUESTS))


if __name__ == "__main__":
    main()
