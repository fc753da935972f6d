#!/usr/bin/env bash
# Exclusive create is linearizable across the ensemble: in each of 20
# rounds three processes, one per mount, started together, create the same
# name with O_CREAT|O_EXCL (`dd conv=excl`, and bash's `set -C; echo >`
# in odd rounds); exactly one wins, the others get EEXIST, and every mount
# then reads the winner's content.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ens_lib.sh"

ROUNDS=20
ens_setup 3
ens_start_all
mkdir "$(ens_mnt 1)/x"
for i in 2 3; do ens_wait_exists "$i" x; done

# racer ID FILE GO OUT: waits (bounded) for GO, then creates FILE
# exclusively with content ID; writes "rc stderr" to OUT.
racer() {
    local id=$1 f=$2 go=$3 out=$4 mode=$5 k rc=0 err
    for k in $(seq 1 1000); do
        [ -e "$go" ] && break
        sleep 0.005
    done
    if [ "$mode" = dd ]; then
        err=$(printf '%s' "$id" | dd of="$f" conv=excl status=none 2>&1) || rc=$?
    else
        err=$( (set -C; echo "$id" >"$f") 2>&1) || rc=$?
    fi
    printf '%s %s\n' "$rc" "$err" >"$out.tmp"
    mv "$out.tmp" "$out"
}

wins_total=()
for r in $(seq 1 "$ROUNDS"); do
    go=$ZK_TMP/go.$r
    if [ $((r % 2)) = 0 ]; then mode=dd; else mode=noclobber; fi
    pids=()
    for i in 1 2 3; do
        zk_bg racer "$i" "$(ens_mnt "$i")/x/f$r" "$go" "$ZK_TMP/res.$r.$i" "$mode"
        pids+=("$ZK_BG")
    done
    touch "$go"
    for p in "${pids[@]}"; do
        wait_for -t 30 zk_pid_gone "$p" || fail "round $r: racer $p hangs"
        wait "$p" || fail "round $r: racer $p failed"
    done
    winner=
    nwin=0
    for i in 1 2 3; do
        read -r rc err <"$ZK_TMP/res.$r.$i"
        if [ "$rc" = 0 ]; then
            winner=$i
            nwin=$((nwin + 1))
        elif [ "$mode" = dd ]; then
            assert_match "File exists" "$err" "round $r: error of the loser on mount $i"
        else
            # bash's noclobber reports EEXIST as "cannot overwrite existing file"
            assert_match "cannot overwrite existing file|File exists" "$err" \
                "round $r: error of the loser on mount $i"
        fi
    done
    [ "$nwin" = 1 ] || {
        cat "$ZK_TMP"/res."$r".* >&2
        fail "round $r ($mode): $nwin creators won, expected exactly 1"
    }
    for i in 1 2 3; do ens_wait_cat "$i" "x/f$r" "$winner"; done
    wins_total+=("$winner")
done
log "winners by round: ${wins_total[*]}"
ens_wait_synced
ens_trees_identical
assert_eq "$ROUNDS" "$(find "$(ens_mnt 2)/x" -type f | wc -l)" "files created"
