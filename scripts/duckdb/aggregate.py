#!/usr/bin/env python3
"""Runs scripts/duckdb/aggregate.sql on canonical Parquet traces and writes a moeplan statistics
file (the same file `moeplan trace aggregate` writes; see docs/fleet.md).

    python3 scripts/duckdb/aggregate.py traces/esft/*.parquet -o stats.parquet [--label NAME]
        [--hops 4] [--window 256] [--threads N]

Each input file is one workload named by its file stem, or all of them one workload (--label).
"""
import argparse
import json
import os
import sys

import duckdb

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from fleet_stats import CASES_PER_FOLD, check_settings, stats_metadata, workload_label  # noqa: E402


def sql_str(s):
    return "'" + s.replace("'", "''") + "'"


def shape_of(con, path):
    rows = con.execute(
        "SELECT decode(key), decode(value) FROM parquet_kv_metadata(?)", [path]
    ).fetchall()
    meta = dict(rows)
    if meta.get("moeplan.trace_version") != "1" or "moeplan.shape" not in meta:
        sys.exit(f"error: {path}: not a canonical moeplan Parquet trace (traces/FORMAT.md)")
    return json.loads(meta["moeplan.shape"])


def aggregate(paths, out, label=None, hops=4, window=256, threads=None):
    con = duckdb.connect()
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    shapes = [shape_of(con, p) for p in paths]
    shape = shapes[0]
    for p, s in zip(paths, shapes):
        if s != shape:
            sys.exit(f"error: {p}: shape {s} differs from the first input's {shape}")
    check_settings(shape, hops, window)
    files = ", ".join("(?, ?)" for _ in paths)
    params = []
    for p in paths:
        params += [os.path.abspath(p), label or workload_label(p)]
    con.execute(f"CREATE TEMP TABLE labels(file VARCHAR, workload VARCHAR)")
    con.execute(f"INSERT INTO labels VALUES {files}", params)
    listing = ", ".join(sql_str(os.path.abspath(p)) for p in paths)
    con.execute(
        "CREATE TEMP TABLE trace AS SELECT l.workload, t.filename AS file, t.token, t.seq, t.pos, "
        "t.layer::INTEGER AS layer, t.experts "
        f"FROM read_parquet([{listing}], filename = true) t JOIN labels l ON l.file = t.filename"
    )
    for name, value in [
        ("layers", shape["moe_layers"]),
        ("hops", hops),
        ("window_tokens", window),
        ("cases_per_fold", CASES_PER_FOLD),
    ]:
        con.execute(f"SET VARIABLE {name} = {int(value)}")
    with open(os.path.join(HERE, "aggregate.sql")) as f:
        con.execute(f.read())
    tokens = con.execute("SELECT coalesce(sum(count), 0) FROM stats WHERE kind = 'tokens'").fetchone()[0]
    meta = stats_metadata(shape, tokens, window, hops)
    kv = ", ".join(f"{sql_str(k)}: {sql_str(v)}" for k, v in meta.items())
    con.execute(
        f"COPY stats TO {sql_str(out)} (FORMAT parquet, COMPRESSION zstd, KV_METADATA {{{kv}}})"
    )
    return tokens


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("traces", nargs="+", help="canonical Parquet traces")
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--label", help="one workload label for every input")
    ap.add_argument("--hops", type=int, default=4)
    ap.add_argument("--window", type=int, default=256)
    ap.add_argument("--threads", type=int)
    a = ap.parse_args()
    tokens = aggregate(a.traces, a.output, a.label, a.hops, a.window, a.threads)
    print(f"aggregated {tokens} tokens; wrote {a.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
