#!/usr/bin/env python3
"""PySpark job: routing statistics of canonical Parquet traces (traces/FORMAT.md), written as a
moeplan statistics file (the same file `moeplan trace aggregate` writes; see docs/fleet.md).

    spark-submit scripts/spark/aggregate.py logs/*.parquet -o stats.parquet [--label NAME]
        [--hops 4] [--window 256] [--master local[2]] [--partitions 2]
    python3 scripts/spark/aggregate.py ...          # pyspark from PyPI, local mode

Plain DataFrame code: each input file is one workload named by its file stem (or all of them one
workload, --label); the work partitions by file and token, so a day of logs from many nodes is
one job. The rows are sorted on Spark, written as Parquet, then streamed by pyarrow into one file
with the key-value metadata.
"""
import argparse
import glob
import json
import os
import shutil
import sys
import tempfile

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import SparkSession, Window
from pyspark.sql import functions as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from fleet_stats import (  # noqa: E402
    CASES_PER_FOLD,
    COLUMNS,
    check_settings,
    stats_metadata,
    workload_label,
)

SCHEMA = pa.schema(
    [
        pa.field("kind", pa.string(), nullable=False),
        pa.field("workload", pa.string(), nullable=False),
        pa.field("window", pa.int64(), nullable=False),
        pa.field("hop", pa.int32(), nullable=False),
        pa.field("layer", pa.int32(), nullable=False),
        pa.field("src", pa.int32(), nullable=False),
        pa.field("dst", pa.int32(), nullable=False),
        pa.field("count", pa.int64(), nullable=False),
    ]
)


def shape_of(path):
    meta = pq.read_metadata(path).metadata or {}
    meta = {k.decode(): v.decode() for k, v in meta.items()}
    if meta.get("moeplan.trace_version") != "1" or "moeplan.shape" not in meta:
        sys.exit(f"error: {path}: not a canonical moeplan Parquet trace (traces/FORMAT.md)")
    return json.loads(meta["moeplan.shape"])


def row(kind, window, hop, layer, src, dst, count):
    """A statistics row of `kind` from column expressions (ints are literals or columns)."""
    lit = lambda v: v if not isinstance(v, int) else F.lit(v)  # noqa: E731
    return [
        F.lit(kind).alias("kind"),
        F.col("workload"),
        lit(window).cast("long").alias("window"),
        lit(hop).cast("int").alias("hop"),
        lit(layer).cast("int").alias("layer"),
        lit(src).cast("int").alias("src"),
        lit(dst).cast("int").alias("dst"),
        lit(count).cast("long").alias("count"),
    ]


def statistics(spark, paths, label, shape, hops, window):
    """The statistics rows as one DataFrame (unsorted), and the token count.

    The (token, layer) rows are gathered into one row per token (its experts layer by layer,
    `ex`, and the previous token's of the same sequence, `pex`); every count is then one explode
    of integer codes per token and one group-by, so the whole job is a handful of shuffles.
    """
    L, E = shape["moe_layers"], shape["experts"]
    labels = spark.createDataFrame(
        [(os.path.abspath(p), label or workload_label(p)) for p in paths], "file string, workload string"
    )
    raw = spark.read.parquet(*[os.path.abspath(p) for p in paths])
    rows = raw.select(
        F.regexp_replace(F.col("_metadata.file_path"), "^file:(//)?", "").alias("file"),
        "token",
        "seq",
        F.col("layer").cast("int").alias("layer"),
        "experts",
    )
    tok = (
        rows.groupBy("file", "token", "seq")
        .agg(F.sort_array(F.collect_list(F.struct("layer", "experts"))).alias("ls"))
        .select("file", "token", "seq", F.expr("transform(ls, x -> x.experts)").alias("ex"))
    )
    before = tok.select(
        "file", (F.col("token") + 1).alias("token"), F.col("seq").alias("pseq"), F.col("ex").alias("pex")
    )
    tok = (
        tok.join(before, ["file", "token"], "left")
        .select(
            "file",
            "token",
            "seq",
            "ex",
            F.when(F.col("pseq") == F.col("seq"), F.col("pex")).alias("pex"),
        )
        .join(F.broadcast(labels), "file")
        .cache()
    )

    def counted(codes_sql, **keys):
        """Counts of the codes `codes_sql` gives each token, per workload and `keys` columns."""
        return (
            tok.select("workload", *[v.alias(k) for k, v in keys.items()], F.explode(F.expr(codes_sql)).alias("code"))
            .groupBy("workload", *keys, "code")
            .count()
        )

    ee = E * E
    loads = f"flatten(transform(sequence(0, {L - 1}), l -> transform(ex[l], a -> cast(l * {E} + a as bigint))))"
    pairs = (
        f"flatten(transform(sequence(1, {hops}), h -> flatten(transform(sequence(0, {L - 1} - h), l -> "
        f"flatten(transform(ex[l], a -> transform(ex[l + h], b -> "
        f"((cast(h as bigint) * {L} + l) * {E} + a) * {E} + b)))))))"
    )
    top1 = f"transform(sequence(0, {L - 2}), l -> (cast(l as bigint) * {E} + ex[l][0]) * {E} + ex[l + 1][0])"
    prev = (
        f"if(pex is null, array(), flatten(transform(sequence(0, {L - 1}), l -> "
        f"flatten(transform(pex[l], a -> transform(ex[l], b -> (cast(l as bigint) * {E} + a) * {E} + b))))))"
    )
    c = F.col("code")
    parts = [
        tok.groupBy("workload").count().select(*row("tokens", -1, 0, -1, -1, -1, F.col("count"))),
        tok.where("pex is not null")
        .groupBy("workload")
        .count()
        .select(*row("followers", -1, 0, -1, -1, -1, F.col("count"))),
        counted(loads).select(*row("load", -1, 0, F.floor(c / E), c % E, -1, F.col("count"))),
        counted(loads, w=F.floor(F.col("token") / window)).select(
            *row("window", F.col("w"), 0, F.floor(c / E), c % E, -1, F.col("count"))
        ),
        counted(pairs).select(
            *row("pair", -1, F.floor(c / (ee * L)), F.floor(c / ee) % L, F.floor(c / E) % E, c % E, F.col("count"))
        ),
        counted(top1).select(*row("top1", -1, 1, F.floor(c / ee), F.floor(c / E) % E, c % E, F.col("count"))),
        counted(prev).select(*row("prev", -1, 0, F.floor(c / ee), F.floor(c / E) % E, c % E, F.col("count"))),
    ]
    # The held-out sample: every stride-th (token, layer) of each file, token-major, per hop.
    hop_df = spark.range(1, hops + 1).select(F.col("id").cast("int").alias("hop"))
    strides = (
        tok.groupBy("file")
        .agg(F.count("*").alias("n"), F.min("token").alias("t0"))
        .crossJoin(hop_df)
        .select(
            "file",
            "hop",
            "t0",
            F.greatest(F.lit(1), F.floor(F.col("n") * (L - F.col("hop")) / CASES_PER_FOLD)).alias("stride"),
        )
    )
    cases = (
        tok.join(F.broadcast(strides), "file")
        .select(
            "workload",
            "token",
            "hop",
            "ex",
            "pex",
            F.explode(
                F.expr(f"filter(sequence(0, {L - 1} - hop), l -> ((token - t0) * ({L} - hop) + l) % stride = 0)")
            ).alias("layer"),
        )
        .select(
            "workload",
            "token",
            "hop",
            "layer",
            F.expr("ex[layer]").alias("case_cur"),
            F.expr("ex[layer + hop]").alias("case_truth"),
            F.expr("if(pex is null, array(), pex[layer + hop])").alias("case_prev"),
        )
    )
    for kind in ("case_cur", "case_truth", "case_prev"):
        parts.append(
            cases.select("workload", "token", "hop", "layer", F.posexplode(kind).alias("rank", "expert")).select(
                *row(kind, F.col("token"), F.col("hop"), F.col("layer"), F.col("rank"), F.col("expert"), 1)
            )
        )
    out = parts[0]
    for p in parts[1:]:
        out = out.unionByName(p)
    return out, tok.count()


def write(df, out, meta):
    """Sorts `df` into the canonical order on Spark, then streams it into one file with the
    metadata (pyarrow, batch by batch)."""
    tmp = tempfile.mkdtemp(prefix="moeplan-stats-")
    try:
        parts_dir = os.path.join(tmp, "parts")
        (
            df.repartition(1)
            .sortWithinPartitions("workload", "kind", "hop", "window", "layer", "src", "dst")
            .write.parquet(parts_dir)
        )
        schema = SCHEMA.with_metadata(meta)
        with pq.ParquetWriter(out, schema, compression="zstd") as w:
            for f in sorted(glob.glob(os.path.join(parts_dir, "part-*.parquet"))):
                for batch in pq.ParquetFile(f).iter_batches(columns=COLUMNS):
                    w.write_table(pa.Table.from_batches([batch]).cast(schema))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def aggregate(spark, paths, out, label=None, hops=4, window=256):
    shapes = [shape_of(p) for p in paths]
    shape = shapes[0]
    for p, s in zip(paths, shapes):
        if s != shape:
            sys.exit(f"error: {p}: shape {s} differs from the first input's {shape}")
    check_settings(shape, hops, window)
    df, tokens = statistics(spark, paths, label, shape, hops, window)
    write(df, out, stats_metadata(shape, tokens, window, hops))
    return tokens


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("traces", nargs="+", help="canonical Parquet traces")
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--label", help="one workload label for every input")
    ap.add_argument("--hops", type=int, default=4)
    ap.add_argument("--window", type=int, default=256)
    ap.add_argument("--master", default=None, help="Spark master (default: spark-submit's, else local[*])")
    ap.add_argument("--partitions", type=int, default=2, help="spark.sql.shuffle.partitions")
    a = ap.parse_args()
    builder = SparkSession.builder.appName("moeplan-aggregate")
    if a.master or not os.environ.get("SPARK_ENV_LOADED"):
        builder = builder.master(a.master or "local[*]")
    spark = (
        builder.config("spark.sql.shuffle.partitions", str(a.partitions))
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    try:
        tokens = aggregate(spark, a.traces, a.output, a.label, a.hops, a.window)
    finally:
        spark.stop()
    print(f"aggregated {tokens} tokens; wrote {a.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
