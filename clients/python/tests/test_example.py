"""The offloaded-MoE example runs against a real daemon, and its output check can fail."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

import offloaded_moe  # noqa: E402


def test_the_example_output_equals_the_all_resident_model(daemon) -> None:
    for policy in ("lru", "lfu"):
        r = offloaded_moe.main(daemon.socket, policy=policy)
        assert r["equal"], policy
        s = r["stats"]
        # Both hits and misses happened: the slots were really used and really reloaded.
        assert s["hits"] > 0 and s["misses"] > 0 and r["copies"] >= s["misses"], (policy, s)


class WrongCopy(offloaded_moe.OffloadedRuntime):
    """Copies the neighbouring expert into the slot of every fifth transfer."""

    def copy(self, transfers):
        done = super().copy(transfers)
        for t in done:
            if self.copies % 5 == 0:
                wrong = (t.expert + 1) % offloaded_moe.EXPERTS
                self.slots[t.slot] = (t.layer, t.expert, self.host[t.layer][wrong])
        return done


def test_a_wrong_copy_changes_the_output(daemon) -> None:
    assert not offloaded_moe.main(daemon.socket, runtime_cls=WrongCopy)["equal"]
