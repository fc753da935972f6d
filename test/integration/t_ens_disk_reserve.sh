#!/usr/bin/env bash
# t_ens_disk_reserve.sh — every replica's disk fills up at once, as it does
# when they hold the same data on disks of one size (SPEC 5: "a full disk:
# ENOSPC to the writer, the ensemble stays consistent"). Each replica's
# data directory is on a 12 MiB tmpfs and keeps a 6 MiB reserve
# (ZKFS_DISK_RESERVE_BYTES; replica.c asks zk_store_room before a write
# that adds data). What must hold: writes through any mount go on until
# one fails with ENOSPC (not EIO, not a hang), no replica's store fails (a
# store that fails stops its replica: with all three, the ensemble), what
# was acknowledged is on every mount, deletes go on while the disks are
# at the reserve; once there is room again (the disks grown: deletes free
# LMDB's pages, not the disk's) 8 writers at once through one mount each
# get done or ENOSPC (a mount counts what it has on the way; the reserve
# must cover what the others have) and writes go on until ENOSPC again.
# Without the reserve all three stores failed on one batch and the writer
# got EIO (t_ens_full_disk tests that path, one replica). Then the same
# with LMDB's map as the limit (4 MiB, ZKFS_MAP_SIZE_BYTES, on a large
# disk; a 1 MiB reserve), where the deletes themselves make the room:
# without the reserve a full map wedged the ensemble for good (each new
# core failed the same batch again, and no delete got through).
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"
# shellcheck source=ens_lib.sh
. "$here/ens_lib.sh"

ens_setup 3
for i in 1 2 3; do zk_tmpfs "$(ens_data "$i")" 12m; done

# fill FROM: 200 kB files fFROM, fFROM+1, ... through mounts 1, 2, 3 in
# turn until one fails (at most 60); the failure must be ENOSPC. Sets
# LAST to the number of the write that failed.
fill() {
    local i err
    LAST=
    for i in $(seq "$1" $(($1 + 59))); do
        head -c 204800 /dev/urandom >"$ZK_TMP/blob"
        # dd, not bash's >: a new file's commit is its close, and dd
        # reports close()'s error
        if ! err=$(dd if="$ZK_TMP/blob" of="$(ens_mnt $((i % 3 + 1)))/f$i" \
                   bs=64k status=none 2>&1); then
            LAST=$i
            log "write $i (mount $((i % 3 + 1))) failed: $err"
            assert_match "No space left on device" "$err" "the writer's error"
            return 0
        fi
        SUMS[f$i]=$(sha256sum <"$ZK_TMP/blob")
    done
}

# run_case WHAT: the three replicas started on empty data directories (with
# the environment the caller set), filled, emptied in part, filled again.
run_case() {
    declare -gA SUMS=()
    ens_start_all
    log "$1: writing until the room is down to the reserve"
    fill 1
    [ -n "$LAST" ] || fail "$1: 60 x 200 kB fitted"
    [ "$LAST" -gt 5 ] || fail "only $((LAST - 1)) writes before ENOSPC"
    for i in 1 2 3; do
        if grep -m1 "writing to the store failed" "$ZK_TMP/zkfs.r$i.log"; then
            fail "replica $i's store failed: the reserve did not keep it"
        fi
    done
    grep -q "at the reserve" "$ZK_TMP/zkfs.r$((LAST % 3 + 1)).log" ||
        fail "the refusing replica did not log why"
    # a retry fails the same way, at once (refused before it is proposed)
    t0=$SECONDS
    err=$(head -c 204800 /dev/urandom | dd of="$(ens_mnt 2)/again" bs=64k \
          status=none 2>&1) && fail "a write succeeded on a disk at its reserve"
    assert_match "No space left on device" "$err" "the retry's error"
    [ $((SECONDS - t0)) -le 5 ] || fail "the refused write took $((SECONDS - t0)) s"
    [ -e "$(ens_mnt 2)/again" ] && fail "the refused write left its file"
    grep -q "^zkfs_store_at_reserve 1" "$(ens_mnt 2)/.zkfs.prom" ||
        fail "zkfs_store_at_reserve: $(grep at_reserve "$(ens_mnt 2)/.zkfs.prom")"
    grep -q "^zkfs_store_reserve_refusals_total [1-9]" "$(ens_mnt 2)/.zkfs.prom" ||
        fail "zkfs_store_reserve_refusals_total is not counted"
    "$ZKFS" status "$(ens_mnt 2)" | grep -qE "^store +at its disk reserve" ||
        fail "zkfs status: $("$ZKFS" status "$(ens_mnt 2)" | grep store)"
    # a longer rewrite of a file, refused at its close: the old content,
    # and the old size (the kernel's is invalidated)
    size=$(stat -c %s "$(ens_mnt 1)/f1")
    head -c 300000 /dev/urandom >"$ZK_TMP/long"
    dd if="$ZK_TMP/long" of="$(ens_mnt 1)/f1" bs=64k status=none 2>/dev/null &&
        fail "a rewrite succeeded at the reserve"
    assert_eq "$size" "$(stat -c %s "$(ens_mnt 1)/f1")" "f1's size after a refused rewrite"
    assert_eq "${SUMS[f1]}" "$(sha256sum <"$(ens_mnt 1)/f1")" "f1 after a refused rewrite"

    log "what was acknowledged is on every mount"
    ens_wait_synced
    for m in 1 2 3; do
        for f in "${!SUMS[@]}"; do
            assert_eq "${SUMS[$f]}" "$(sha256sum <"$(ens_mnt "$m")/$f")" "$f on mount $m"
        done
    done

    log "deletes go on while the disks are low, and make room"
    n=0
    for f in "${!SUMS[@]}"; do
        rm "$(ens_mnt $((n % 3 + 1)))/$f" || fail "rm $f while the disks are low"
        unset "SUMS[$f]"
        n=$((n + 1))
        [ $n -lt $(((LAST - 1) * 2 / 3)) ] || break
    done
    log "deleted $n of $((LAST - 1)) files"
    if [ "$1" = disks ]; then
        # Deletes free LMDB's pages, not the file system's: its file never
        # shrinks and the log keeps ZKFS_LOG_KEEP entries (100,000). Room
        # on a disk comes from elsewhere.
        for i in 1 2 3; do mount -o remount,size=13m "$(ens_data "$i")"; done
        log "the disks grown by 1 MiB"
    fi

    log "16 writers at once through one mount: each gets its answer, ENOSPC or done"
    local pids=() k
    for k in $(seq 16); do
        head -c 204800 /dev/urandom >"$ZK_TMP/par$k"
        dd if="$ZK_TMP/par$k" of="$(ens_mnt 1)/par$k" bs=64k status=none \
            2>"$ZK_TMP/par$k.err" &
        pids+=($!)
    done
    ok=0
    for k in $(seq 16); do
        if wait "${pids[$((k - 1))]}"; then
            SUMS[par$k]=$(sha256sum <"$ZK_TMP/par$k")
            ok=$((ok + 1))
        else
            assert_match "No space left on device" "$(cat "$ZK_TMP/par$k.err")" \
                "writer $k's error"
        fi
    done
    log "$ok of 16 done, $((16 - ok)) ENOSPC"
    for i in 1 2 3; do
        if grep -m1 "writing to the store failed" "$ZK_TMP/zkfs.r$i.log"; then
            fail "replica $i's store failed under 16 writers at once"
        fi
    done
    first=$LAST
    fill "$LAST"
    [ -n "$LAST" ] || fail "the disks never filled again"
    [ $((ok + LAST - first)) -ge 2 ] ||
        fail "only $((ok + LAST - first)) writes fitted in the room made"
    log "$((ok + LAST - first)) new writes fitted, then ENOSPC again"
    for i in 1 2 3; do
        if grep -m1 "writing to the store failed" "$ZK_TMP/zkfs.r$i.log"; then
            fail "replica $i's store failed after the deletes"
        fi
    done

    ens_wait_synced
    for f in "${!SUMS[@]}"; do
        assert_eq "${SUMS[$f]}" "$(sha256sum <"$(ens_mnt 3)/$f")" "$f on mount 3"
    done
    ens_trees_identical
    for i in 1 2 3; do ens_stop "$i"; done
}

log "the disks are the limit: 12 MiB each, a 6 MiB reserve"
export ZKFS_MAP_SIZE_BYTES=$((256 * 1024 * 1024))
export ZKFS_DISK_RESERVE_BYTES=$((6 * 1024 * 1024))
run_case disks

log "LMDB's map is the limit: 4 MiB, on 64 MiB disks, a 1 MiB reserve"
for i in 1 2 3; do
    rm -rf "$(ens_data "$i")"/*
    : >"$ZK_TMP/zkfs.r$i.log"      # (what the greps above look for)
    mount -o remount,size=64m "$(ens_data "$i")"
done
export ZKFS_MAP_SIZE_BYTES=$((4 * 1024 * 1024))
export ZKFS_DISK_RESERVE_BYTES=$((1024 * 1024))
run_case maps
