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

# racer ID FILE GO OUT MODE: waits for its line on the FIFO GO (at most
# 20 s), then creates FILE exclusively with content ID (bounded by
# timeout); writes "rc stderr" to OUT.
racer() {
    local id=$1 f=$2 go=$3 out=$4 mode=$5 rc=0 err
    exec 3<>"$go"
    read -r -t 20 _ <&3 || { echo "124 no go" >"$out"; return 0; }
    if [ "$mode" = dd ]; then
        err=$(printf '%s' "$id" | timeout 20 dd of="$f" conv=excl status=none 2>&1) || rc=$?
    else
        err=$(timeout 20 bash -c 'set -C; echo "$1" >"$2"' _ "$id" "$f" 2>&1) || rc=$?
    fi
    printf '%s %s\n' "$rc" "$err" >"$out"
}

wins_total=()
for r in $(seq 1 "$ROUNDS"); do
    go=$ZK_TMP/go.$r
    mkfifo "$go"
    exec 7<>"$go"    # keeps the FIFO's lines until every racer read one
    if [ $((r % 2)) = 0 ]; then mode="dd"; else mode="noclobber"; fi
    pids=()
    for i in 1 2 3; do
        zk_bg racer "$i" "$(ens_mnt "$i")/x/f$r" "$go" "$ZK_TMP/res.$r.$i" "$mode"
        pids+=("$ZK_BG")
    done
    printf 'go\ngo\ngo\n' >&7    # all three start at once
    for p in "${pids[@]}"; do
        wait "$p" || fail "round $r: racer $p failed"
    done
    exec 7>&-
    winner=
    nwin=0
    for i in 1 2 3; do
        read -r rc err <"$ZK_TMP/res.$r.$i"
        [ "$rc" != 124 ] || fail "round $r: the racer on mount $i timed out: $err"
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
