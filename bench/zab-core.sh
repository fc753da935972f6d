#!/usr/bin/env bash
# zab-core.sh — throughput of the consensus core alone, in the deterministic
# simulator (no disk, no network, no FUSE): transactions committed per
# CPU-second with 3 and 5 voters, proposals batched by the Ready/Advance
# loop. Runs each configuration RUNS times (default 5) and prints the
# median. Usage: bench/zab-core.sh [TXNS]   (default 200000 per run)
set -euo pipefail
cd "$(dirname "$0")/.."
txns=${1:-200000}
runs=${RUNS:-5}
make -s build/zkfs-sim
for voters in 3 5; do
    vals=()
    for ((i = 0; i < runs; i++)); do
        out=$(build/zkfs-sim --bench --replicas "$voters" --txns "$txns" \
                  --seed $((i + 1)))
        vals+=("$(sed -E 's/.* ([0-9]+) txn\/CPU-s.*/\1/' <<<"$out")")
    done
    median=$(printf '%s\n' "${vals[@]}" | sort -n | sed -n "$(((runs + 1) / 2))p")
    printf 'zab core, %d voters: median %s txn/CPU-s over %d runs of %d txns (%s)\n' \
        "$voters" "$median" "$runs" "$txns" "${vals[*]}"
done
