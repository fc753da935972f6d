#!/usr/bin/env bash
# A full disk: the data directory on an 8 MiB tmpfs (with an LMDB map far
# larger, so the file system fills before the map). Writes go until one
# fails with ENOSPC, which must reach the writer; everything written before
# is intact, also after a remount. The disk reserve is off
# (ZKFS_DISK_RESERVE_BYTES=0), so that the store itself meets the full
# disk; t_ens_disk_reserve has the reserve.
. "$(dirname "$0")/lib.sh"

S=$ZK_TMP/small
M=$ZK_TMP/mnt
zk_tmpfs "$S" 8m
export ZKFS_MAP_SIZE_BYTES=$((256 * 1024 * 1024))
export ZKFS_DISK_RESERVE_BYTES=0
zk_start "$S/data" "$M"

zk_fill_until_full "$M" 200
[ -n "$ZK_FULL" ] || fail "200 x 100 kB fitted on an 8 MiB tmpfs"
[ "$ZK_FULL" -gt 5 ] || fail "the disk was full after only $ZK_FULL writes"
zk_check_sums "$M" "while the disk is full"
echo small >"$M/after" 2>/dev/null || log "a small write fails too while full"
zk_stop "$M"
zk_start "$S/data" "$M"
zk_check_sums "$M" "after remount"
zk_stop "$M"
umount "$S"
