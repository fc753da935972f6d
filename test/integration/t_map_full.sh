#!/usr/bin/env bash
# The store's map is full (ZKFS_MAP_SIZE_BYTES small): the writer gets
# ENOSPC, earlier data is intact, deleting makes room again. The reserve
# is off (ZKFS_DISK_RESERVE_BYTES=0), so that the store itself meets the
# full map; t_ens_disk_reserve has the reserve before a full map.
. "$(dirname "$0")/lib.sh"

M=$ZK_TMP/mnt
export ZKFS_MAP_SIZE_BYTES=$((4 * 1024 * 1024))
export ZKFS_DISK_RESERVE_BYTES=0
zk_start "$ZK_TMP/data" "$M"

zk_fill_until_full "$M" 100
[ -n "$ZK_FULL" ] || fail "100 x 100 kB fitted in a 4 MiB map"
zk_check_sums "$M" "while the map is full"

# Deleting frees pages for reuse: a write that did not fit now does.
for f in "${!ZK_SUMS[@]}"; do
    rm "$M/$f"
    unset "ZK_SUMS[$f]"
    [ ${#ZK_SUMS[@]} -gt 2 ] || break
done
head -c 102400 /dev/urandom >"$ZK_TMP/blob"
cp "$ZK_TMP/blob" "$M/again" || fail "no room after deleting"
ZK_SUMS[again]=$(sha256sum <"$ZK_TMP/blob")

zk_stop "$M"
zk_start "$ZK_TMP/data" "$M"
zk_check_sums "$M" "after remount"
zk_stop "$M"
