"""The Python client against a real daemon: per-layer calls, pipelining, errors, metrics."""

from __future__ import annotations

import json
import os
import socket
import stat
import struct
import urllib.request

import msgpack
import pytest

from moeplan_client import Client, DaemonError, StepResult

SHAPE = dict(moe_layers=4, experts=16, top_k=2)


def test_socket_is_private(daemon) -> None:
    assert stat.S_IMODE(os.stat(daemon.socket).st_mode) == 0o600


def test_per_layer_steps(daemon) -> None:
    with Client(daemon.socket) as c:
        assert c.server.startswith("moeplan")
        s = c.register(**SHAPE, capacity=4, name="gpu0", bytes_per_expert=1000)
        assert s.slots == 16
        for layer in range(4):
            r = s.step(layer, [1, 5])
            assert isinstance(r, StepResult)
            assert [p.expert for p in r.placements] == [1, 5]
            assert r.hits + r.misses == 2
            for t in r.loads:
                assert t.layer == layer and 0 <= t.slot < s.slots
                assert r.slot_of(t.expert) == t.slot
                assert t.evict is None or t.evict.expert not in (1, 5) or t.evict.layer != layer
            s.loaded(layer, [t.expert for t in r.loads])
        st = s.stats()
        assert st["steps"] == 4
        assert st["hits"] + st["misses"] == st["demands"] == 8
        final = s.close()
        assert final["session"] == s.id


def test_pipelined_steps_come_back_in_order(daemon) -> None:
    with Client(daemon.socket) as c:
        s = c.register(**SHAPE, capacity=4)
        ids = [s.send_step(layer, [layer, layer + 1]) for layer in range(4)]
        replies = [c.recv() for _ in ids]
        assert [r["id"] for r in replies] == ids
        assert all(r["op"] == "step" for r in replies)


def test_errors_are_typed_and_harmless(daemon) -> None:
    with Client(daemon.socket) as c:
        s = c.register(**SHAPE, capacity=4)
        with pytest.raises(DaemonError) as e:
            s.step(4, [0])
        assert e.value.code == "out_of_range"
        with pytest.raises(DaemonError) as e:
            s.step(0, [16])
        assert e.value.code == "out_of_range"
        with pytest.raises(DaemonError) as e:
            c.call("step", {"session": 999, "layer": 0, "experts": [0]})
        assert e.value.code == "unknown_session"
        s.observe(0, [1, 2], [3, 4])  # fire-and-forget, no reply
        assert s.step(0, [1]).placements  # the session still works
        assert s.stats()["rejected"] == 2


def test_wrong_version_is_refused(daemon) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(daemon.socket)
    body = msgpack.packb({"id": 7, "op": "hello", "args": {"version": 999}})
    sock.sendall(struct.pack(">I", len(body)) + body)
    data = b""
    while len(data) < 4 or len(data) < 4 + struct.unpack(">I", data[:4])[0]:
        chunk = sock.recv(4096)
        assert chunk
        data += chunk
    reply = msgpack.unpackb(data[4:], raw=False)
    assert reply["id"] == 7 and reply["op"] == "error"
    assert reply["result"]["code"] == "version_mismatch"
    assert sock.recv(1) == b""  # and the connection is closed
    sock.close()


def test_metrics_and_health(daemon) -> None:
    with Client(daemon.socket) as c:
        s = c.register(**SHAPE, capacity=4, name="gpu-metrics")
        s.step(0, [1, 2])
        base = "http://127.0.0.1:%d" % daemon.metrics_port
        assert urllib.request.urlopen(base + "/healthz", timeout=5).read() == b"ok\n"
        text = urllib.request.urlopen(base + "/metrics", timeout=5).read().decode()
        assert 'moeplan_session_hit_ratio{session="%d",name="gpu-metrics"}' % s.id in text
        assert 'moeplan_requests_total{op="step"} 1' in text


def _plan(tmp_path, gpus: int = 2) -> str:
    """A plan JSON v1 (as `moeplan place -o` writes) for SHAPE: GPU g holds experts g*8..g*8+7."""
    per = SHAPE["experts"] // gpus
    doc = {
        "format": "moeplan-plan",
        "version": 1,
        "model": "test",
        "hardware": "test",
        "method": "contiguous",
        "moe_layers": SHAPE["moe_layers"],
        "first_moe_layer": 0,
        "experts": SHAPE["experts"],
        "nodes": 1,
        "gpus": gpus,
        "slots_per_gpu": per,
        "physical_to_logical_map": [list(range(SHAPE["experts"]))] * SHAPE["moe_layers"],
        "logical_count": [[1] * SHAPE["experts"]] * SHAPE["moe_layers"],
        "built_on": [],
        "in_sample": None,
        "solver": None,
    }
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(doc))
    return str(path)


def test_a_plan_answers_other_gpus_experts_as_remote(daemon, tmp_path) -> None:
    with Client(daemon.socket) as c:
        s = c.register(**SHAPE, capacity=4, plan=_plan(tmp_path), gpu=1)
        r = s.step(0, [2, 9])
        by_expert = {p.expert: p for p in r.placements}
        assert by_expert[2].state == "remote" and by_expert[2].gpu == 0
        assert by_expert[9].state == "loading" and by_expert[9].gpu == 1
        assert [t.expert for t in r.loads] == [9]
        with pytest.raises(DaemonError) as e:
            c.register(**SHAPE, capacity=4, plan=_plan(tmp_path), gpu=2)
        assert e.value.code == "bad_request" and "plan.json" in e.value.message


def test_hints_wait_in_the_queue_until_pulled(daemon) -> None:
    with Client(daemon.socket) as c:
        s = c.register(**SHAPE, capacity=4, policy="predictive", prefetch_top=2)
        scores = [0.0] * SHAPE["experts"]
        scores[7], scores[3] = 0.9, 0.5
        r = StepResult._from(
            c.call(
                "step",
                {"session": s.id, "layer": 0, "experts": [1], "next_scores": scores, "prefetch": 0},
            )
        )
        assert r.prefetch == []
        pulled = s.prefetch(8, release=True)
        assert [(t.layer, t.expert) for t in pulled] == [(1, 7), (1, 3)]
        assert s.prefetch(8) == []


def _plan_on_h100(tmp_path):
    """A plan for the 8 GPUs of the built-in hardware h100-8x-nvlink, two experts each."""
    path = tmp_path / "plan8.json"
    doc = json.loads(open(_plan(tmp_path, gpus=8)).read())
    doc["hardware"] = "h100-8x-nvlink"
    path.write_text(json.dumps(doc))
    return path


def test_replan_moves_hot_experts_apart_within_the_budget(daemon, tmp_path) -> None:
    # 8 GPUs of the built-in hardware h100-8x-nvlink, two experts each; experts 0 and 1 (both on
    # GPU 0) take most of the tokens.
    path = _plan_on_h100(tmp_path)
    with Client(daemon.socket) as c:
        s = c.register(**SHAPE, capacity=2, plan=str(path), gpu=0, bytes_per_expert=1000)
        with pytest.raises(DaemonError) as e:
            s.replan(4)
        assert e.value.code == "bad_request" and "observe" in e.value.message
        for layer in range(SHAPE["moe_layers"]):
            s.observe(layer, list(range(16)), [100, 100] + [10] * 14)
        r = s.replan(2)
        assert 0 < r["moves"] <= 2 and r["bytes_moved"] == 1000 * r["moves"]
        assert r["ir_after"] < r["ir_before"]
        assert r["selections"] == SHAPE["moe_layers"] * (200 + 140)
        for ch in r["changed"]:
            assert ch["gpu"] == ch["slot"] // 2 and ch["from"] != ch["to"]
        with pytest.raises(DaemonError) as e:
            s.replan(2, history_half_life=-1)
        assert e.value.code == "bad_request" and "history_half_life" in e.value.message
        with pytest.raises(DaemonError) as e:
            s.replan(2, current=[[0] * 16] * SHAPE["moe_layers"])
        assert e.value.code == "bad_request" and "current" in e.value.message
        assert s.stats()["rejected"] == 3


def test_observed_pairs_reach_the_replans_hop_rates(daemon, tmp_path) -> None:
    path = _plan_on_h100(tmp_path)
    with Client(daemon.socket) as c:
        s = c.register(**SHAPE, capacity=2, plan=str(path), gpu=0)
        for layer in range(SHAPE["moe_layers"]):
            s.observe(layer, list(range(16)), [100, 100] + [10] * 14)
        r = s.replan(0)
        assert r["hop_before"] == 0  # no pairs reported: no hops to count
        for layer in range(SHAPE["moe_layers"] - 1):
            s.observe(layer, [], pairs=[(0, 15, 50), (1, 1, 50)])
        s.observe(0, [], pairs=[(0, 99, 1)])  # expert outside the model: rejected
        r = s.replan(0)
        assert r["hop_before"] > 0
        assert s.stats()["rejected"] == 1


def test_an_online_session_reports_its_live_recall(daemon) -> None:
    # One sequence whose tokens always take experts (l, l + 1) at layer l: a cold-start markov
    # predictor learns it after one token.
    with Client(daemon.socket) as c:
        s = c.register(**SHAPE, capacity=4, policy="predictive", online=True, predictor_name="markov",
                       name="gpu-online")
        for _ in range(5):
            for layer in range(SHAPE["moe_layers"]):
                experts = [layer, layer + 1]
                s.step(layer, experts, seqs=[7], topk=[experts], weights=[[0.6, 0.4]])
        st = s.stats()
        assert st["learned"] == 5
        # 5 tokens x 3 predicted layers x top-2; the last 4 tokens are predicted exactly.
        assert st["predicted"] == 30 and st["predicted_hits"] >= 24
        base = "http://127.0.0.1:%d" % daemon.metrics_port
        text = urllib.request.urlopen(base + "/metrics", timeout=5).read().decode()
        label = '{session="%d",name="gpu-online"}' % s.id
        values = dict(line.rsplit(" ", 1) for line in text.splitlines() if label in line)
        assert float(values["moeplan_session_live_recall" + label]) == st["live_recall"]
        assert float(values["moeplan_session_learned_tokens_total" + label]) == 5
        assert float(values["moeplan_session_prefetch_hits_total" + label]) == st["prefetch_hits"]
        assert float(values["moeplan_session_prefetch_accuracy" + label]) == st["prefetch_accuracy"]
