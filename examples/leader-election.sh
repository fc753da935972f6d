#!/usr/bin/env bash
# leader-election.sh — ZooKeeper's leader-election recipe, with files.
#
# What it shows: MOUNT/election is a directory whose xattr
# user.zkfs.children is "ephemeral,sequential". Every candidate creates a
# child there and keeps it open:
#     exec 9> "$M/election/n_"        # zkfs names it n_0000000007
# The child lives exactly as long as the candidate holds fd 9 (a crash
# closes it too), and its name — read from the open file, xattr
# user.zkfs.name — carries the directory's sequence number. The candidate
# with the lowest number leads. Every other one waits for its predecessor
# (the next lower number) to vanish, then looks again: one deletion wakes
# one candidate, not all of them. The wait is inotifywait on the directory
# (IN_DELETE), followed by a check of the predecessor's name, so a deletion
# that happens before the watch is in place is not missed (the watch times
# out after a second and the check runs again).
#
# Children of a candidate must not inherit fd 9 (`9>&-`): a `sleep` that
# held it would keep a dead candidate's node alive.
#
# Run:
#   examples/leader-election.sh MOUNTPOINT NAME
#       one candidate: waits until it leads, then prints a line every
#       second while it leads (stop it with Ctrl-C or kill)
#   examples/leader-election.sh --demo
#       starts a 3-server ensemble (examples/ensemble-3.sh), one candidate
#       on each mount, kills the leader with SIGKILL twice and shows the
#       next in line take over on another mount; stops everything
# Needs setfattr/getfattr (package attr) and inotifywait (inotify-tools).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
die() { echo "leader-election: $*" >&2; exit 1; }

# candidate MOUNT NAME: the recipe.
candidate() {
    local name=$2 e=$1/election me pred
    mkdir -p "$e"
    [ "$(getfattr --only-values -n user.zkfs.children "$e" 2>/dev/null)" = ephemeral,sequential ] ||
        setfattr -n user.zkfs.children -v ephemeral,sequential "$e"
    exec 9>"$e/n_"
    me=$(getfattr --only-values -n user.zkfs.name "/proc/self/fd/9" 2>/dev/null)
    me=${me##*/}
    echo "[$name] joined as $me"
    while :; do
        # My predecessor: the largest name below mine (names sort by number).
        pred=$(ls "$e" 9>&- | awk -v me="$me" '$0 < me' | tail -n 1)
        if [ -z "$pred" ]; then
            echo "[$name] $me is the lowest: I am the leader"
            while :; do echo "[$name] leading ($(date -u +%T))"; sleep 1 9>&-; done
        fi
        echo "[$name] waiting for $pred to go"
        while [ -e "$e/$pred" ]; do
            inotifywait -qq -t 1 -e delete "$e" 9>&- 2>/dev/null || true
        done
    done
}

if [ "${1:-}" != "--demo" ]; then
    [ $# -eq 2 ] || die "usage: leader-election.sh MOUNTPOINT NAME | --demo"
    candidate "$1" "$2"
fi

# --- demo -----------------------------------------------------------------
D=$(mktemp -d /tmp/zkfs-election.XXXXXX)
declare -A CAND=()                  # name -> pid
cleanup() {
    local p
    for p in "${CAND[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${CAND[@]}"; do wait "$p" 2>/dev/null || true; done
    "$HERE/ensemble-3.sh" --stop "$D" >/dev/null
    rm -rf --one-file-system "$D"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
"$HERE/ensemble-3.sh" --start "$D" | tail -n 1

# One candidate per mount, a little apart so that the order is c1, c2, c3.
for i in 1 2 3; do
    candidate "$D/m$i" "c$i on m$i" >>"$D/c$i.out" &
    CAND[c$i]=$!
    sleep 0.5
done

# leader: the name of the candidate that says it leads, waiting up to 10 s
# for the line "leading" from one of the live ones.
leader() {
    local c
    for _ in $(seq 100); do
        for c in "${!CAND[@]}"; do
            tail -n 1 "$D/$c.out" | grep -q 'leading' && { echo "$c"; return 0; }
        done
        sleep 0.1
    done
    return 1
}
show() { sleep 1.5; for c in c1 c2 c3; do sed 's/^/  /' "$D/$c.out"; : >"$D/$c.out"; done; }

l=$(leader) || die "nobody leads"
echo "election: $(ls "$D/m2/election" | tr '\n' ' ')(seen through m2)"
show
for _ in 1 2; do
    echo "--- kill -9 the leader, $l (pid ${CAND[$l]})"
    kill -9 "${CAND[$l]}"
    wait "${CAND[$l]}" 2>/dev/null || true
    unset "CAND[$l]"
    l=$(leader) || die "nobody took over"
    echo "election: $(ls "$D/m1/election" | tr '\n' ' ')(seen through m1)"
    show
done
echo "--- $l leads; stopping"
