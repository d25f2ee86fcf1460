"""What the Spark and DuckDB aggregations share with moeplan: the statistics file's schema,
metadata and the workload label of a trace path (docs/fleet.md)."""
import json
import os
import sys

# The mix's held-out cases per (fold, look-ahead) (moeplan's predict::CASES_PER_FOLD).
CASES_PER_FOLD = 3000
STATS_VERSION = "1"
COLUMNS = ["kind", "workload", "window", "hop", "layer", "src", "dst", "count"]


def workload_label(path):
    """A trace's default workload label: its file stem."""
    name = os.path.basename(os.path.normpath(path))
    return name.rsplit(".", 1)[0] if "." in name else name


def check_settings(shape, hops, window):
    if window < 1:
        sys.exit("error: --window must be at least 1")
    if not 1 <= hops < shape["moe_layers"]:
        sys.exit(f"error: --hops must be in 1..{shape['moe_layers'] - 1}")


def stats_metadata(shape, tokens, window, hops):
    """The key-value metadata of a statistics file (the shape JSON as moeplan writes it)."""
    keys = ["moe_layers", "experts", "top_k", "first_moe_layer"]
    shape_json = json.dumps({k: shape[k] for k in keys}, separators=(",", ":"))
    return {
        "moeplan.stats_version": STATS_VERSION,
        "moeplan.shape": shape_json,
        "moeplan.tokens": str(int(tokens)),
        "moeplan.window_tokens": str(int(window)),
        "moeplan.hops": str(int(hops)),
    }
