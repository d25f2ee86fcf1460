"""The client: frames (4-byte big-endian length + msgpack map), requests with ids, typed replies."""

from __future__ import annotations

import os
import socket
import struct
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import msgpack

#: Protocol version this client speaks (checked by the daemon at ``hello``).
PROTOCOL_VERSION = 1

_HEADER = struct.Struct(">I")


def default_socket_path() -> str:
    """The daemon's default socket: ``$XDG_RUNTIME_DIR/moeplan.sock``, else ``/tmp/moeplan-$USER.sock``."""
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR")
    if runtime_dir:
        return os.path.join(runtime_dir, "moeplan.sock")
    return "/tmp/moeplan-%s.sock" % os.environ.get("USER", "default")


class DaemonError(Exception):
    """The daemon refused a request: ``code`` is stable (e.g. ``out_of_range``), ``message`` explains."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__("%s: %s" % (code, message))
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ExpertRef:
    """An expert of a layer."""

    layer: int
    expert: int


@dataclass(frozen=True)
class Transfer:
    """Copy ``expert`` of ``layer`` from host memory into GPU slot ``slot`` (``None``: a temporary
    buffer, not cached), evicting ``evict``."""

    layer: int
    expert: int
    slot: Optional[int]
    evict: Optional[ExpertRef]

    @staticmethod
    def _from(d: Dict[str, Any]) -> "Transfer":
        ev = d.get("evict")
        return Transfer(
            d["layer"], d["expert"], d["slot"], ExpertRef(ev["layer"], ev["expert"]) if ev else None
        )


@dataclass(frozen=True)
class Placement:
    """Where a demanded expert is: ``state`` is ``resident``, ``in_flight``, ``loading`` (this
    step's load), ``transient`` (no slot to spare: stream it, not cached) or ``remote`` (served by
    GPU ``gpu`` of the session's placement plan)."""

    expert: int
    slot: Optional[int]
    state: str
    #: With a placement plan: the GPU serving the expert.
    gpu: Optional[int] = None


@dataclass(frozen=True)
class StepResult:
    """The daemon's answer to a step."""

    #: One per distinct requested expert, in request order.
    placements: List[Placement]
    #: Distinct requested experts resident or in flight.
    hits: int
    #: Distinct requested experts not cached.
    misses: int
    #: Loads to issue now, in this order (the layer waits for them).
    loads: List[Transfer]
    #: Prefetches for the next layers, issued after ``loads`` (optional to honour).
    prefetch: List[Transfer]

    def slot_of(self, expert: int) -> Optional[int]:
        """The slot of a requested expert (``None`` if streamed or not requested)."""
        for p in self.placements:
            if p.expert == expert:
                return p.slot
        return None

    @staticmethod
    def _from(d: Dict[str, Any]) -> "StepResult":
        return StepResult(
            [Placement(p["expert"], p["slot"], p["state"], p.get("gpu")) for p in d["placements"]],
            d["hits"],
            d["misses"],
            [Transfer._from(t) for t in d["loads"]],
            [Transfer._from(t) for t in d["prefetch"]],
        )


class Client:
    """One connection to the daemon (Unix socket by default, or TCP with the daemon's token).

    Not thread-safe: use one client per runtime thread. ``send``/``recv`` pipeline; the other
    calls send one request and wait for its reply.
    """

    def __init__(
        self,
        path: Optional[str] = None,
        *,
        tcp: Optional[tuple] = None,
        token: Optional[str] = None,
        timeout: Optional[float] = 30.0,
        client_name: str = "moeplan-py 0.1.0",
    ) -> None:
        if tcp is not None:
            self._sock = socket.create_connection(tcp, timeout=timeout)
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        else:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._sock.settimeout(timeout)
            self._sock.connect(path or default_socket_path())
        self._buf = bytearray()
        self._next_id = 1
        reply = self.call("hello", {"version": PROTOCOL_VERSION, "client": client_name, "token": token})
        self.server: str = reply["server"]
        self.max_frame: int = reply["max_frame"]

    # -- transport -------------------------------------------------------------------------
    def send(self, op: str, args: Dict[str, Any]) -> int:
        """Sends one request without waiting; returns its id (replies come in request order)."""
        rid = self._next_id
        self._next_id += 1
        body = msgpack.packb({"id": rid, "op": op, "args": args}, use_bin_type=True)
        self._sock.sendall(_HEADER.pack(len(body)) + body)
        return rid

    def recv(self) -> Dict[str, Any]:
        """Reads the next reply: ``{"id", "op", "result"}`` (``op == "error"`` for a refusal)."""
        while True:
            if len(self._buf) >= 4:
                (n,) = _HEADER.unpack_from(self._buf, 0)
                if len(self._buf) >= 4 + n:
                    body = bytes(self._buf[4 : 4 + n])
                    del self._buf[: 4 + n]
                    return msgpack.unpackb(body, raw=False)
            chunk = self._sock.recv(65536)
            if not chunk:
                raise ConnectionError("the daemon closed the connection")
            self._buf += chunk

    def call(self, op: str, args: Dict[str, Any]) -> Dict[str, Any]:
        """Sends one request and returns its result; raises :class:`DaemonError` on refusal."""
        rid = self.send(op, args)
        reply = self.recv()
        if reply["id"] != rid and reply["op"] != "error":
            raise ConnectionError("reply %s to request %s" % (reply["id"], rid))
        if reply["op"] == "error":
            err = reply["result"]
            raise DaemonError(err["code"], err["message"])
        return reply["result"]

    def close(self) -> None:
        """Closes the connection (the daemon closes this connection's sessions)."""
        self._sock.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- requests --------------------------------------------------------------------------
    def register(
        self,
        *,
        moe_layers: int,
        experts: int,
        top_k: int,
        capacity: int,
        capacity_mode: str = "per_layer",
        policy: str = "lru",
        name: str = "",
        bytes_per_expert: int = 0,
        half_life: Optional[float] = None,
        beta: Optional[float] = None,
        prefetch_top: Optional[int] = None,
        train: Sequence[str] = (),
        predictor: Optional[str] = None,
        predictor_name: Optional[str] = None,
        lookahead: Optional[int] = None,
        plan: Optional[str] = None,
        gpu: Optional[int] = None,
        online: bool = False,
    ) -> "Session":
        """Opens a session for one GPU: its model shape, expert-slot budget and policy.

        ``capacity`` slots per layer (``capacity_mode="per_layer"``) or in all (``"shared"``);
        ``policy`` is ``lru``, ``lfu``, ``static`` (ranked by the ``train`` trace files, read by
        the daemon) or ``predictive`` (fed by the ``next_scores`` hints of steps, or by the
        ``predictor`` file from the steps' ``routing``). ``plan`` (a ``moeplan place -o`` file)
        and ``gpu``: expert parallelism, this session caches only its GPU's experts (and
        :meth:`Session.replan` re-plans it from the counts :meth:`Session.observe` reports).
        ``online``: the session's predictor learns from the routing its steps report (without a
        ``predictor`` file: a cold-start ``predictor_name``, default ``mix``). Paths are read by
        the daemon: give absolute ones.
        """
        extra: Dict[str, Any] = {}
        for key, value in (
            ("predictor", predictor),
            ("predictor_name", predictor_name),
            ("lookahead", lookahead),
            ("plan", plan),
            ("gpu", gpu),
        ):
            if value is not None:
                extra[key] = value
        if online:
            extra["online"] = True
        r = self.call(
            "register",
            {
                **extra,
                "name": name,
                "moe_layers": moe_layers,
                "experts": experts,
                "top_k": top_k,
                "bytes_per_expert": bytes_per_expert,
                "capacity": capacity,
                "capacity_mode": capacity_mode,
                "policy": policy,
                "half_life": half_life,
                "beta": beta,
                "prefetch_top": prefetch_top,
                "train": list(train),
            },
        )
        return Session(self, r["session"], r["slots"])

    def stats(self, session: Optional[int] = None) -> List[Dict[str, Any]]:
        """Counters of one session, or of every session of this connection."""
        return list(self.call("stats", {"session": session})["sessions"])


class Session:
    """A registered session: the calls a runtime makes per layer."""

    def __init__(self, client: Client, session_id: int, slots: int) -> None:
        self.client = client
        #: Session id given by the daemon.
        self.id = session_id
        #: Expert slots in all.
        self.slots = slots

    def _step_args(
        self,
        layer: int,
        experts: Sequence[int],
        next_scores: Optional[Sequence[float]],
        keep_pins: bool,
        routing: Optional[Dict[str, Any]] = None,
    ) -> Dict[str, Any]:
        args: Dict[str, Any] = {
            "session": self.id,
            "layer": layer,
            "experts": [int(e) for e in experts],
            "next_scores": None if next_scores is None else [float(s) for s in next_scores],
            "keep_pins": keep_pins,
        }
        if routing is not None:
            args["routing"] = routing
        return args

    def step(
        self,
        layer: int,
        experts: Sequence[int],
        next_scores: Optional[Sequence[float]] = None,
        keep_pins: bool = False,
        seqs: Optional[Sequence[int]] = None,
        topk: Optional[Sequence[Sequence[int]]] = None,
        weights: Optional[Sequence[Sequence[float]]] = None,
    ) -> StepResult:
        """Before running ``layer``: the experts its gate selected -> slots, loads, prefetches.

        For a session with a predictor file, also give each token's sequence id (``seqs``), its
        top-k experts at this layer, highest weight first (``topk``) and gate ``weights``.
        """
        routing = None
        if seqs is not None and topk is not None:
            routing = {
                "seqs": [int(q) for q in seqs],
                "experts": [int(e) for row in topk for e in row],
                "weights": [float(w) for row in (weights or []) for w in row],
            }
        args = self._step_args(layer, experts, next_scores, keep_pins, routing)
        return StepResult._from(self.client.call("step", args))

    def prefetch(self, max_transfers: int, release: bool = False) -> List[Transfer]:
        """The copy engine is idle: issue up to ``max_transfers`` queued prefetches now
        (``release``: the layers stepped so far finished computing, unpin them first)."""
        r = self.client.call("prefetch", {"session": self.id, "max": max_transfers, "release": release})
        return [Transfer._from(t) for t in r["transfers"]]

    def send_step(
        self,
        layer: int,
        experts: Sequence[int],
        next_scores: Optional[Sequence[float]] = None,
        keep_pins: bool = True,
    ) -> int:
        """Pipelined step: sends now, returns the request id; read the reply with :meth:`recv_step`."""
        return self.client.send("step", self._step_args(layer, experts, next_scores, keep_pins))

    def recv_step(self) -> StepResult:
        """The next reply on the connection, as a step result."""
        reply = self.client.recv()
        if reply["op"] == "error":
            raise DaemonError(reply["result"]["code"], reply["result"]["message"])
        return StepResult._from(reply["result"])

    def loaded(self, layer: int, experts: Sequence[int]) -> int:
        """Reports finished transfers; returns how many remain in flight."""
        r = self.client.call("loaded", {"session": self.id, "layer": layer, "experts": [int(e) for e in experts]})
        return int(r["pending"])

    def observe(
        self,
        layer: int,
        experts: Sequence[int],
        counts: Optional[Sequence[int]] = None,
        pairs: Optional[Sequence[Tuple[int, int, int]]] = None,
    ) -> None:
        """Fire-and-forget routing counts (no reply). ``pairs``: ``(src, dst, tokens)``, tokens
        routed to ``src`` at ``layer`` and to ``dst`` at ``layer + 1`` (all k x k pairs of each
        token); with a plan they feed the communication term of :meth:`replan`."""
        body: Dict[str, Any] = {
            "session": self.id,
            "layer": layer,
            "experts": [int(e) for e in experts],
            "counts": [int(c) for c in counts] if counts is not None else [],
        }
        if pairs:
            body["pairs"] = [[int(a), int(b), int(n)] for a, b, n in pairs]
        self.client.send("observe", body)

    def replan(
        self,
        move_budget: int,
        current: Optional[Sequence[Sequence[int]]] = None,
        balance_weight: Optional[float] = None,
        comm_weight: Optional[float] = None,
        history_half_life: Optional[float] = None,
    ) -> Dict[str, Any]:
        """The move-budgeted re-plan from the counts :meth:`observe` reported (the session needs a
        ``plan``): ``changed`` (``layer``, ``slot``, ``gpu``, ``from``, ``to`` of each physical
        slot whose expert changes), ``moves``, ``bytes_moved``, ``ir_before``/``ir_after``,
        ``hop_before``/``hop_after``, ``selections`` and ``seconds``. ``current`` (the
        ``physical_to_logical_map`` in service) defaults to the last re-plan returned, else the
        registered plan; the re-plan becomes the plan in service. Weights left out take the
        daemon's defaults (``balance_weight`` 1, ``comm_weight`` 12, ``history_half_life`` 0.5
        re-plans), those of ``moeplan rebalance``.
        """
        args: Dict[str, Any] = {"session": self.id, "move_budget": int(move_budget)}
        if current is not None:
            args["current"] = [[int(e) for e in row] for row in current]
        for key, value in (
            ("balance_weight", balance_weight),
            ("comm_weight", comm_weight),
            ("history_half_life", history_half_life),
        ):
            if value is not None:
                args[key] = float(value)
        return dict(self.client.call("replan", args))

    def stats(self) -> Dict[str, Any]:
        """This session's counters."""
        return self.client.stats(self.id)[0]

    def close(self) -> Dict[str, Any]:
        """Ends the session; returns its final counters."""
        return dict(self.client.call("close", {"session": self.id})["stats"])
