#!/usr/bin/env bash
# The write-ahead log is bounded in bytes as well as in entries
# (ZKFS_LOG_KEEP_BYTES; ZKFS_LOG_KEEP counts entries, 100,000 by default,
# which for large files alone would be gigabytes): rewriting one 200 kB
# file 60 times (12 MB of log records) through a standalone mount with
# 1 MiB segments and a 3 MiB bound leaves a log of a few segments, and
# the file's last version after a remount.
. "$(dirname "$0")/lib.sh"

D=$ZK_TMP/data
M=$ZK_TMP/mnt
export ZKFS_WAL_SEGMENT_BYTES=$((1024 * 1024))
export ZKFS_LOG_KEEP_BYTES=$((3 * 1024 * 1024))
zk_start "$D" "$M"
for i in $(seq 60); do
    head -c 204800 /dev/urandom >"$ZK_TMP/blob"
    cp "$ZK_TMP/blob" "$M/f" || fail "rewrite $i"
done
sum=$(sha256sum <"$ZK_TMP/blob")
# (the log is trimmed up to the last checkpoint, ZKFS_CHECKPOINT_MS 100:
# a few more small writes after it let the trim reach the big ones)
sleep 0.5
for i in 1 2 3; do echo "$i" >"$M/small"; sleep 0.2; done
kb=$(du -sk "$D/zkfs-wal" | cut -f1)
log "log: $kb KiB in $(find "$D/zkfs-wal" -type f | wc -l) segments after 12 MB of records"
[ "$kb" -le $((6 * 1024)) ] || fail "the log holds $kb KiB (bound 3 MiB, segments of 1 MiB)"
zk_stop "$M"
zk_start "$D" "$M"
assert_eq "$sum" "$(sha256sum <"$M/f")" "the last version after remount"
assert_eq 3 "$(cat "$M/small")" "small after remount"
zk_stop "$M"
