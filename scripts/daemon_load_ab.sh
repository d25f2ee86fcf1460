#!/usr/bin/env bash
# Before/after load figures of the cache daemon in one run (the machine is shared and noisy, so
# configurations alternate round by round and the median of the rounds is printed).
#
#   scripts/daemon_load_ab.sh OLD_BIN NEW_BIN [ROUNDS] [SECONDS]
#
# OLD_BIN: a `moeplan` built from the commit before the change (its bench has no --client);
# NEW_BIN: this tree's. Rows: the old binary; the new one with the previous client and runtime
# flavour (a blocking thread per session, multi-thread runtime with 1 worker); the new defaults
# (every session on one thread, current-thread daemon); and with 4 steps in flight per session.
set -euo pipefail
old=$1 new=$2 rounds=${3:-5} secs=${4:-3}
out=$(mktemp)
run() { # label, binary, args...
    local label=$1 bin=$2; shift 2
    printf '%s\t%s\n' "$label" "$("$bin" bench daemon --json --seconds "$secs" "$@" | tr -d '\n ')" >>"$out"
}
for _ in $(seq "$rounds"); do
    for s in 8 1; do
        run "old s=$s" "$old" --sessions "$s"
        run "new threads+multi s=$s" "$new" --sessions "$s" --client threads --multi-thread
        run "new s=$s" "$new" --sessions "$s"
    done
    run "new s=8 pipeline 4" "$new" --sessions 8 --pipeline 4
    echo "round done; $(uptime | sed 's/.*load/load/')" >&2
done
python3 "$(dirname "$0")/daemon_table.py" "$out"
rm -f "$out"
