#!/usr/bin/env bash
# The store's map is full (ZKFS_MAP_SIZE_BYTES small): the writer gets
# ENOSPC, earlier data is intact, deleting makes room again.
. "$(dirname "$0")/lib.sh"

M=$ZK_TMP/mnt
export ZKFS_MAP_SIZE_BYTES=$((4 * 1024 * 1024))
zk_start "$ZK_TMP/data" "$M"

declare -A sums=()
full=
for i in $(seq 1 100); do
    head -c 102400 /dev/urandom >"$ZK_TMP/blob"
    if ! err=$(cp "$ZK_TMP/blob" "$M/f$i" 2>&1); then
        full=$i
        log "write $i failed: $err"
        assert_match "No space left on device" "$err" "the writer's error"
        break
    fi
    sums[f$i]=$(sha256sum <"$ZK_TMP/blob")
done
[ -n "$full" ] || fail "100 x 100 kB fitted in a 4 MiB map"
for f in "${!sums[@]}"; do
    assert_eq "${sums[$f]}" "$(sha256sum <"$M/$f")" "$f"
done
zk_stop "$M"
zk_start "$ZK_TMP/data" "$M"
for f in "${!sums[@]}"; do
    assert_eq "${sums[$f]}" "$(sha256sum <"$M/$f")" "$f after remount"
done
zk_stop "$M"
