#!/usr/bin/env bash
# Latency of the cache daemon under 8 sessions, closed and open loop, in one run (configurations
# alternate round by round; the median of the rounds is printed, with the time the spin client's
# own loop was held up, which shows how much of the tail the machine itself adds).
#
#   scripts/daemon_latency.sh BIN [ROUNDS] [SECONDS] [RATE]
#
# BIN: a `moeplan` binary (for example `CARGO_PROFILE_DEV_OPT_LEVEL=3 cargo build --bin moeplan`,
# then target/debug/moeplan). RATE: steps/s offered in the open-loop rows (default 50000).
set -euo pipefail
bin=$1 rounds=${2:-3} secs=${3:-3} rate=${4:-50000}
out=$(mktemp)
run() { # label, args...
    local label=$1; shift
    printf '%s\t%s\n' "$label" "$("$bin" bench daemon --json --seconds "$secs" "$@" | tr -d '\n ')" >>"$out"
}
for _ in $(seq "$rounds"); do
    run "closed, async client (defaults)" --sessions 8
    run "closed, spin client" --sessions 8 --client spin
    run "closed, spin client, --busy-poll" --sessions 8 --client spin --busy-poll
    run "closed, spin client, --busy-poll, 1 session" --sessions 1 --client spin --busy-poll
    run "closed, spin client, --busy-poll, --pipeline 4" --sessions 8 --client spin --busy-poll --pipeline 4
    run "open $rate/s, spin client" --sessions 8 --client spin --rate "$rate"
    run "open $rate/s, spin client, --busy-poll" --sessions 8 --client spin --busy-poll --rate "$rate"
    echo "round done; $(uptime | sed 's/.*load/load/')" >&2
done
python3 "$(dirname "$0")/daemon_table.py" "$out"
rm -f "$out"
