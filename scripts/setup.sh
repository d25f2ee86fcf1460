#!/usr/bin/env bash
# Installs what a fresh Debian/Ubuntu machine lacks to build and test moeplan: cmake and
# libclang-dev (HiGHS is built from source through good_lp), and chromium (the report's browser
# test renders the page headless), only when missing.
set -euo pipefail
need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)
dpkg -s libclang-dev >/dev/null 2>&1 || need+=(libclang-dev)
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}" >&2
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need[@]}" >/dev/null
fi
command -v cargo >/dev/null 2>&1 || { echo "setup: cargo not found; install Rust >= 1.95 (https://rustup.rs)" >&2; exit 1; }
# The Python client's tests (`pytest clients/python`) need msgpack and pytest.
if ! python3 -c 'import msgpack, pytest' >/dev/null 2>&1; then
  echo "setup: installing the Python packages msgpack and pytest" >&2
  python3 -m pip install --quiet --no-cache-dir msgpack pytest 2>/dev/null \
    || python3 -m pip install --quiet --no-cache-dir --break-system-packages msgpack pytest 2>/dev/null \
    || { sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
         $sudo_cmd apt-get update -qq
         DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq python3-msgpack python3-pytest >/dev/null; }
fi
# The aggregation tests (`pytest scripts/tests`) run Spark in local mode and DuckDB: pyspark,
# duckdb and pyarrow from PyPI, and a headless Java runtime for Spark.
if ! command -v java >/dev/null 2>&1; then
  echo "setup: installing default-jre-headless (Java for Spark)" >&2
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq default-jre-headless >/dev/null
fi
if ! python3 -c 'import pyspark, duckdb, pyarrow' >/dev/null 2>&1; then
  echo "setup: installing the Python packages pyspark, duckdb and pyarrow" >&2
  python3 -m pip install --quiet --no-cache-dir pyspark duckdb pyarrow 2>/dev/null \
    || python3 -m pip install --quiet --no-cache-dir --break-system-packages pyspark duckdb pyarrow
fi
