#!/usr/bin/env bash
# t_ens_full_disk.sh — one replica's disk fills up in a 3-replica ensemble
# (SPEC 5: "a full disk: ENOSPC to the writer, the ensemble stays
# consistent"). Replica 3's data directory is on a small tmpfs; writes
# through replica 1's mount go on until replica 3 cannot store them.
# What must hold: the two others go on committing (a quorum), nothing
# acknowledged is lost, replica 3's mount keeps serving reads and fails
# writes with an error (never a hang), and once its disk has room again
# (the tmpfs grown) replica 3 comes back by itself — no restart, the same
# mount — catches up, and all three trees are identical.
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"
# shellcheck source=ens_lib.sh
. "$here/ens_lib.sh"

ens_setup 3
zk_tmpfs "$(ens_data 3)" 12m
export ZKFS_MAP_SIZE_BYTES=$((256 * 1024 * 1024))
ens_start_all

declare -A SUMS=()
# put I N WHEN: a new 200 kB file fN through replica I's mount, which must
# succeed (WHEN says when, for the failure); its sum in SUMS.
put() {
    head -c 204800 /dev/urandom >"$ZK_TMP/blob"
    cp "$ZK_TMP/blob" "$(ens_mnt "$1")/f$2" || fail "write $2 through replica $1 failed $3"
    SUMS[f$2]=$(sha256sum <"$ZK_TMP/blob")
}

log "writing 200 kB files through replica 1 until replica 3's disk is full"
full=
for i in $(seq 1 150); do
    put 1 "$i" "(replicas 1 and 2 have room)"
    if grep -q "writing to the store failed" "$ZK_TMP/zkfs.r3.log"; then
        full=$i
        break
    fi
done
[ -n "$full" ] || fail "replica 3's 12 MiB disk never filled"
log "replica 3's store failed after write $full: $(grep -m1 'writing to the store failed' "$ZK_TMP/zkfs.r3.log")"

log "replicas 1 and 2 go on committing"
for i in $(seq $((full + 1)) $((full + 5))); do
    put 2 "$i" "while replica 3 is full"
done

log "replica 3's mount serves reads and fails writes with an error"
assert_eq "${SUMS[f1]}" "$(sha256sum <"$(ens_mnt 3)/f1")" "f1 read on replica 3"
t0=$SECONDS
# dd, not bash's >: bash ignores close()'s error, and a new file's commit
# is its close. (The open alone succeeds once a retried core runs.)
if err=$(printf x | dd of="$(ens_mnt 3)/on3" status=none 2>&1); then
    fail "a write through full replica 3 succeeded"
fi
log "write on replica 3: $err ($((SECONDS - t0)) s)"
# ENOSPC when the failed core took it (sent nowhere: known not applied);
# EIO when a new core (tried after 1 s) had it in flight as its own batch
# failed (outcome unknown).
assert_match "No space left on device|Input/output error" "$err" "the write's error"
[ $((SECONDS - t0)) -le 10 ] || fail "the failing write took $((SECONDS - t0)) s"

log "while its disk stays full, replica 3 tries a new core (with backoff) and stays out"
wait_for -t 20 grep -q "store still cannot be written\|a new core restored from the store takes part" "$ZK_TMP/zkfs.r3.log" ||
    fail "replica 3 never tried its store again"
sleep 4
n=$(grep -c "a new core will try the store" "$ZK_TMP/zkfs.r3.log")
log "$n failures noticed so far: $(grep -c 'store still cannot be written' "$ZK_TMP/zkfs.r3.log") tries refused, $(grep -c 'a new core restored from the store takes part' "$ZK_TMP/zkfs.r3.log") new cores"
[ "$n" -le 6 ] || fail "replica 3 retried $n times in a few seconds (no backoff)"
if printf x | dd of="$(ens_mnt 3)/on3" status=none 2>/dev/null; then
    fail "a write through replica 3 succeeded while its disk is full"
fi
for i in $(seq $((full + 6)) $((full + 8))); do
    put 1 "$i" "while replica 3 retries"
done
# (between a retried core's start and its failing batch it says ok: wait)
status_says() { "$ZKFS" status "$(ens_mnt 3)" | grep -qE "$1"; }
wait_for -t 15 status_says "^store +failed: No space left on device" ||
    fail "zkfs status does not say why replica 3 is out: $("$ZKFS" status "$(ens_mnt 3)" | grep store)"
grep -q "^zkfs_store_failures_total [1-9]" "$(ens_mnt 3)/.zkfs.prom" ||
    fail "zkfs_store_failures_total is not counted: $(grep store_ "$(ens_mnt 3)/.zkfs.prom")"

log "replica 3's disk grows: it comes back by itself"
mount -o remount,size=128m "$(ens_data 3)"
wait_for -t 60 ens__same_zxid || {
    tail -n 30 "$ZK_TMP/zkfs.r3.log"
    fail "replica 3 did not catch up within 60 s once its disk had room"
}
echo back >"$(ens_mnt 3)/on3" || fail "a write through replica 3 after it came back failed"
ens_wait_cat 1 on3 back
ens_wait_synced
for f in "${!SUMS[@]}"; do
    assert_eq "${SUMS[$f]}" "$(sha256sum <"$(ens_mnt 3)/$f")" "$f on replica 3"
done
ens_trees_identical
status_says "^store +ok" || fail "zkfs status once replica 3 is back: $("$ZKFS" status "$(ens_mnt 3)" | grep store)"
grep -q "^zkfs_store_recoveries_total [1-9]" "$(ens_mnt 3)/.zkfs.prom" ||
    fail "zkfs_store_recoveries_total is not counted"
for i in 1 2 3; do ens_stop "$i"; done
