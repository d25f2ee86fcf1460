"""Starts a real ``moeplan serve`` on a temporary socket for each test that asks for one."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator, NamedTuple

import pytest

REPO = Path(__file__).resolve().parents[3]


def _binary() -> Path:
    """``$MOEPLAN_BIN``, else the debug build in ``$CARGO_TARGET_DIR`` (or ``target/``), built if missing."""
    if os.environ.get("MOEPLAN_BIN"):
        return Path(os.environ["MOEPLAN_BIN"])
    target = Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target")
    path = target / "debug" / "moeplan"
    if not path.exists():
        subprocess.run(["cargo", "build", "--bin", "moeplan"], cwd=REPO, check=True)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Daemon(NamedTuple):
    socket: str
    metrics_port: int
    process: subprocess.Popen


@pytest.fixture
def daemon() -> Iterator[Daemon]:
    tmp = tempfile.mkdtemp(prefix="mpd")
    sock = os.path.join(tmp, "d.sock")
    port = _free_port()
    proc = subprocess.Popen(
        [str(_binary()), "serve", "--socket", sock, "--metrics", "127.0.0.1:%d" % port],
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 20
    while not os.path.exists(sock):
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            raise RuntimeError("daemon did not start: %s" % proc.stderr.read().decode() if proc.stderr else "")
        time.sleep(0.02)
    try:
        yield Daemon(sock, port, proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)
