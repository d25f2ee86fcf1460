"""A runnable offloaded MoE forward pass driven by the moeplan daemon, in pure Python.

Each MoE layer has ``EXPERTS`` experts kept in host memory and a pool of GPU slots (here, plain
Python lists stand in for device buffers). Before a layer runs, the runtime tells the daemon
which experts the router chose; the daemon answers where each one is and which copies to make.
The layer then computes with the experts *as they sit in the slots*, so a wrong answer from
the cache would change the output. The script checks that the output equals the same model run
with every expert resident, and prints the session's hit ratio.

    python3 clients/python/examples/offloaded_moe.py /path/to/moeplan.sock

The same calls (``step``, the copies, ``loaded``, ``prefetch``) are what a PyTorch or CUDA runtime
makes; ``moeplan run`` is the full-size worked example with real expert bytes.
"""

from __future__ import annotations

import random
import sys
from typing import Dict, List, Optional, Sequence, Tuple

from moeplan_client import Client, Session, Transfer

LAYERS, EXPERTS, TOP_K, DIM = 4, 16, 2, 8

Expert = List[List[float]]  # a DIM x DIM matrix


def make_model(seed: int = 0) -> Tuple[List[Expert], List[List[Expert]]]:
    """Per layer, a router (EXPERTS x DIM) and EXPERTS expert matrices, seeded."""
    rng = random.Random(seed)
    mat = lambda rows: [[rng.uniform(-0.5, 0.5) for _ in range(DIM)] for _ in range(rows)]
    routers = [mat(EXPERTS) for _ in range(LAYERS)]
    experts = [[mat(DIM) for _ in range(EXPERTS)] for _ in range(LAYERS)]
    return routers, experts


def matvec(m: Expert, x: Sequence[float]) -> List[float]:
    return [sum(a * b for a, b in zip(row, x)) for row in m]


def route(router: Expert, x: Sequence[float]) -> List[int]:
    """The top-k experts of a token, highest score first."""
    scores = matvec(router, x)
    return sorted(range(EXPERTS), key=lambda e: -scores[e])[:TOP_K]


def moe_layer(x: List[float], chosen: Sequence[int], weights_of) -> List[float]:
    """x + the mean of the chosen experts' outputs (tanh), experts read through ``weights_of``."""
    out = list(x)
    for e in chosen:
        for i, v in enumerate(matvec(weights_of(e), x)):
            out[i] += max(-1.0, min(1.0, v)) / len(chosen)
    return out


def forward_resident(routers, experts, tokens: List[List[float]]) -> List[List[float]]:
    """Every expert resident: the reference output."""
    outs = []
    for x in tokens:
        for layer in range(LAYERS):
            x = moe_layer(x, route(routers[layer], x), lambda e, l=layer: experts[l][e])
        outs.append(x)
    return outs


class OffloadedRuntime:
    """The runtime side: a slot pool, the copies the daemon asks for, and the forward pass."""

    def __init__(self, session: Session, experts: List[List[Expert]]) -> None:
        self.session = session
        self.host = experts
        # slot -> (layer, expert, a copy of the weights)
        self.slots: Dict[int, Tuple[int, int, Expert]] = {}
        self.copies = 0

    def copy(self, transfers: Sequence[Transfer]) -> List[Transfer]:
        """Host -> slot copies, in order (a GPU runtime issues them on a copy stream)."""
        done = [t for t in transfers if t.slot is not None]
        for t in done:
            self.slots[t.slot] = (t.layer, t.expert, [list(r) for r in self.host[t.layer][t.expert]])
            self.copies += 1
        return done

    def weights(self, layer: int, expert: int, slot: Optional[int]) -> Expert:
        if slot is None:  # streamed from host memory, not cached
            return self.host[layer][expert]
        return self.slots[slot][2]

    def forward(self, tokens: List[List[float]], routers) -> List[List[float]]:
        outs = []
        for seq, x in enumerate(tokens):
            for layer in range(LAYERS):
                chosen = route(routers[layer], x)
                plan = self.session.step(layer, chosen, seqs=[seq], topk=[chosen])
                done = self.copy(plan.loads + plan.prefetch)
                self.session.loaded(layer, [t.expert for t in done if t.layer == layer])
                for t in {(t.layer, t.expert) for t in done if t.layer != layer}:
                    self.session.loaded(t[0], [t[1]])
                slot = {p.expert: p.slot for p in plan.placements}
                x = moe_layer(x, chosen, lambda e, l=layer: self.weights(l, e, slot[e]))
                # While the layer computes the copy engine is idle: pull queued prefetches.
                for t in self.copy(self.session.prefetch(2)):
                    self.session.loaded(t.layer, [t.expert])
            outs.append(x)
        return outs


def main(socket_path: str, tokens: int = 24, capacity: int = 3, policy: str = "lru",
         runtime_cls=OffloadedRuntime) -> dict:
    routers, experts = make_model()
    rng = random.Random(1)
    inputs = [[rng.uniform(-1, 1) for _ in range(DIM)] for _ in range(tokens)]
    with Client(socket_path) as client:
        session = client.register(moe_layers=LAYERS, experts=EXPERTS, top_k=TOP_K,
                                  capacity=capacity, policy=policy, name="offloaded-moe")
        runtime = runtime_cls(session, experts)
        out = runtime.forward(inputs, routers)
        stats = client.stats(session.id)[0]
    reference = forward_resident(routers, experts, inputs)
    return {"equal": out == reference, "copies": runtime.copies, "stats": stats}


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    r = main(sys.argv[1])
    s = r["stats"]
    print(f"outputs equal the all-resident model: {r['equal']}; copies {r['copies']}; "
          f"hits {s['hits']}, misses {s['misses']}")
    sys.exit(0 if r["equal"] else 1)
