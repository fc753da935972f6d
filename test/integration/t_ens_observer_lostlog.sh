#!/usr/bin/env bash
# An observer's log is written without sync (it promises nothing to
# anyone: docs/ensemble.md, "Observers"), so a power cut may take records
# it already applied. Simulated on three voters and one observer (server
# 4) by putting the log's files back as they were after a kill -9:
#  1. an older copy of its write-ahead log (the log ends below what its
#     tree applied): the observer starts, says so, shows at once at least
#     what it showed before (its tree survived), syncs from the leader
#     what was written while it was down, and serves writes again;
#  2. a record missing before others in its last segment (a later page of
#     the page cache reached the disk, this one did not): the log is cut
#     there, the observer starts and catches up the same way.
# After each, every tree is the same.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ens_lib.sh"

ens_setup 4 observer=4
ens_start_all
m4=$(ens_mnt 4)
d4=$(ens_data 4)
L=$(ens_leader) || fail "no leader"
mL=$(ens_mnt "$L")
assert_eq observer "$(ens_field 4 role)" "role of server 4"

log "a1..a10, then a copy of the observer's log"
for i in $(seq 1 10); do echo "a$i" >"$mL/a$i"; done
ens_wait_synced
ens_stop 4
cp -a "$d4/zkfs-wal" "$ZK_TMP/oldwal"
ens_start 4
ens_wait_cat 4 a10 a10

log "b1..b10 applied by the observer; kill -9; its older log put back"
for i in $(seq 1 10); do echo "b$i" >"$mL/b$i"; done
ens_wait_synced
z4=$(ens_field 4 zxid)
ens_kill9 4
for f in "$d4"/zkfs-wal/*; do
    old=$ZK_TMP/oldwal/${f##*/}
    if [ -e "$old" ]; then cp "$old" "$f"; else rm -f "$f"; fi
done
log "c1..c5 while the observer is down"
for i in $(seq 1 5); do echo "c$i" >"$mL/c$i"; done

ens_start 4
# Right after its mount: nothing it showed before is gone (the first zxid
# read may already be a later one, once it synced).
assert_eq b10 "$(cat "$m4/b10")" "b10 on the restarted observer"
zn=$(ens_field 4 zxid)
[ $((zn)) -ge $((z4)) ] || fail "the observer went back from $z4 to $zn"
grep -q "below the last applied" "$ZK_TMP/zkfs.r4.log" ||
    fail "the observer did not say that its log ended below its tree"
ens_wait_cat 4 c5 c5
echo from-obs >"$m4/o1"
for i in 1 2 3; do ens_wait_cat "$i" o1 from-obs; done
ens_wait_synced
ens_trees_identical

log "d1..d10; kill -9; the first record of its last segment missing"
for i in $(seq 1 10); do echo "d$i" >"$mL/d$i"; done
ens_wait_synced
ens_kill9 4
seg=$(find "$d4/zkfs-wal" -name '*.wal' | sort | tail -n 1)
[ -n "$seg" ] || fail "no log segment in $d4/zkfs-wal"
# Zeros over the first record's header (32 bytes of segment header
# before it): the records after it are still there.
dd if=/dev/zero of="$seg" bs=1 seek=32 count=16 conv=notrunc status=none
log "e1..e5 while the observer is down"
for i in $(seq 1 5); do echo "e$i" >"$mL/e$i"; done
ens_start 4
assert_eq d10 "$(cat "$m4/d10")" "d10 on the restarted observer"
grep -q "cut at segment" "$ZK_TMP/zkfs.r4.log" ||
    fail "the observer did not cut its log at the missing record"
ens_wait_cat 4 e5 e5
echo from-obs2 >"$m4/o2"
for i in 1 2 3; do ens_wait_cat "$i" o2 from-obs2; done
ens_wait_synced
ens_trees_identical
n=$(ens_tree_size 1)
log "trees identical ($n znodes)"
