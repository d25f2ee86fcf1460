"""Spark (local mode) and DuckDB aggregation of the shipped ESFT traces against moeplan's own:
the statistics files must hold the same rows and metadata, and `place` / `predict train` from
them must give the plan and the predictor files the traces give."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts"


def binary() -> Path:
    """``$MOEPLAN_BIN``, else the debug build in ``$CARGO_TARGET_DIR`` (or ``target/``), built if missing."""
    if os.environ.get("MOEPLAN_BIN"):
        return Path(os.environ["MOEPLAN_BIN"])
    target = Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target")
    path = target / "debug" / "moeplan"
    if not path.exists():
        subprocess.run(["cargo", "build", "--bin", "moeplan"], cwd=REPO, check=True)
    return path


def moeplan(*args: str) -> bytes:
    out = subprocess.run([str(binary()), "-q", *args], cwd=REPO, capture_output=True)
    assert out.returncode == 0, out.stderr.decode()
    return out.stdout


def rows(path: Path):
    t = pq.read_table(path)
    meta = {k: v for k, v in (pq.read_metadata(path).metadata or {}).items() if k.startswith(b"moeplan.")}
    return t.to_pydict(), meta, t.schema.remove_metadata()


def assert_same_stats(a: Path, b: Path) -> None:
    ra, ma, sa = rows(a)
    rb, mb, sb = rows(b)
    assert ma == mb
    assert sa == sb
    assert len(ra["kind"]) == len(rb["kind"])
    assert ra == rb  # same rows in the same (canonical) order


def place_json(*inputs: str) -> dict:
    """`place --json` without timings and without the ILP row, whose time-limited search is not
    reproducible from run to run even on the same traces (tests/fleet.rs checks its input)."""
    out = json.loads(
        moeplan(
            "place", "--model", "deepseek-v2-lite", "--hardware", "h100-8x-nvlink",
            "--method", "all", "--time-limit", "5", "--json", *inputs,
        )
    )
    out["built_on"] = None
    out["methods"] = [m for m in out["methods"] if m["name"] != "ilp"]
    assert len(out["methods"]) == 4
    for m in out["methods"]:
        m["seconds"] = None
        if m.get("solver"):
            m["solver"]["seconds"] = None
    return out


def check_consumers(stats: Path, traces: list[Path], tmp: Path) -> None:
    """place and predict train from `stats` equal those from `traces`."""
    targs = [a for t in traces for a in ("-t", str(t))]
    assert place_json("--stats", str(stats)) == place_json(*targs)
    for kind in ("static", "markov", "mix"):
        a, b = tmp / f"{kind}-t.safetensors", tmp / f"{kind}-s.safetensors"
        moeplan("predict", "train", "--kind", kind, *targs, "-o", str(a))
        moeplan("predict", "train", "--kind", kind, "--stats", str(stats), "-o", str(b))
        assert offline_part(a) == offline_part(b), kind


def offline_part(path: Path) -> tuple:
    """A predictor file without its tuned online options (cross-validated on token order,
    which statistics do not keep): the safetensors header's metadata and every tensor's bytes."""
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    meta = header.pop("__metadata__", {})
    for key, value in list(meta.items()):
        try:
            doc = json.loads(value)
        except ValueError:
            continue
        if isinstance(doc, dict):
            doc.pop("online", None)
            meta[key] = json.dumps(doc, sort_keys=True)
    return (json.dumps(meta, sort_keys=True), json.dumps(header, sort_keys=True), raw[8 + n :])


@pytest.fixture(scope="module")
def small_traces(tmp_path_factory) -> list[Path]:
    """The first sequences of two shipped ESFT tasks (1835 and 2867 tokens, a fifth of the three
    tasks' 25028): Spark's local mode stays within a minute or two on 2 cores."""
    d = tmp_path_factory.mktemp("traces")
    out = []
    for task, seqs in (("law", 8), ("summary", 3)):
        p = d / f"{task}.parquet"
        src = str(REPO / f"traces/esft/{task}.parquet")
        moeplan("trace", "convert", "-t", src, "--first-sequences", str(seqs), "-o", str(p))
        out.append(p)
    return out


def test_duckdb_matches_native_on_the_esft_traces(tmp_path):
    traces = sorted((REPO / "traces/esft").glob("*.parquet"))
    native, duck = tmp_path / "native.parquet", tmp_path / "duck.parquet"
    moeplan("trace", "aggregate", *[a for t in traces for a in ("-t", str(t))], "-o", str(native))
    subprocess.run(
        [sys.executable, str(SCRIPTS / "duckdb/aggregate.py"), *map(str, traces), "-o", str(duck)],
        check=True,
    )
    assert_same_stats(native, duck)
    check_consumers(duck, traces, tmp_path)


def test_spark_local_matches_native(tmp_path, small_traces):
    native, spark = tmp_path / "native.parquet", tmp_path / "spark.parquet"
    moeplan("trace", "aggregate", *[a for t in small_traces for a in ("-t", str(t))], "-o", str(native))
    subprocess.run(
        [
            sys.executable, str(SCRIPTS / "spark/aggregate.py"), *map(str, small_traces),
            "-o", str(spark), "--master", "local[2]",
        ],
        check=True,
    )
    assert_same_stats(native, spark)
    check_consumers(spark, small_traces, tmp_path)


def test_per_file_statistics_merge_to_the_whole(tmp_path, small_traces):
    """DuckDB on each file, merged by moeplan, equals DuckDB on both files."""
    one, a, b, merged = (tmp_path / n for n in ("one.parquet", "a.parquet", "b.parquet", "m.parquet"))
    run = [sys.executable, str(SCRIPTS / "duckdb/aggregate.py")]
    subprocess.run([*run, str(small_traces[0]), "-o", str(a)], check=True)
    subprocess.run([*run, str(small_traces[1]), "-o", str(b)], check=True)
    subprocess.run([*run, *map(str, small_traces), "-o", str(one)], check=True)
    moeplan("stats", "merge", str(a), str(b), "-o", str(merged))
    assert_same_stats(one, merged)
