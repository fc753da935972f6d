#!/usr/bin/env bash
# A full disk: the data directory on an 8 MiB tmpfs (with an LMDB map far
# larger, so the file system fills before the map). Writes go until one
# fails with ENOSPC, which must reach the writer; everything written before
# is intact, also after a remount.
. "$(dirname "$0")/lib.sh"

S=$ZK_TMP/small
M=$ZK_TMP/mnt
zk_tmpfs "$S" 8m
export ZKFS_MAP_SIZE_BYTES=$((256 * 1024 * 1024))
zk_start "$S/data" "$M"

declare -A sums=()
full=
for i in $(seq 1 200); do
    head -c 102400 /dev/urandom >"$ZK_TMP/blob"
    if ! err=$(cp "$ZK_TMP/blob" "$M/f$i" 2>&1); then
        full=$i
        log "write $i failed: $err"
        assert_match "No space left on device" "$err" "the writer's error"
        break
    fi
    sums[f$i]=$(sha256sum <"$ZK_TMP/blob")
done
[ -n "$full" ] || fail "200 x 100 kB fitted on an 8 MiB tmpfs"
[ "$full" -gt 5 ] || fail "the disk was full after only $full writes"

check_all() {
    local f
    for f in "${!sums[@]}"; do
        assert_eq "${sums[$f]}" "$(sha256sum <"$M/$f")" "$f ($1)"
    done
}
check_all "while the disk is full"
echo small >"$M/after" 2>/dev/null || log "a small write fails too while full"
zk_stop "$M"
zk_start "$S/data" "$M"
check_all "after remount"
zk_stop "$M"
umount "$S"
