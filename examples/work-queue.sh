#!/usr/bin/env bash
# work-queue.sh — a work queue: producers add items, consumers on any host
# take each item exactly once.
#
# What it shows: MOUNT/wq/queue is a directory whose xattr
# user.zkfs.children is "sequential", so items get increasing names in the
# order they were committed:
#     zkfs create -s "$M/wq/queue/item-" "payload"   # prints .../item-0000000042
# A consumer claims the lowest item by renaming it into MOUNT/wq/claimed:
#     mv "$M/wq/queue/item-0000000042" "$M/wq/claimed/"
# A rename is one transaction, ordered by the leader: when two consumers
# (on the same or different replicas) race for an item, exactly one `mv`
# succeeds and the other fails with "No such file or directory" and moves
# on to the next item. The winner processes the item and deletes it.
# An idle consumer sleeps in inotifywait until something is created in the
# queue (or for a second, so that nothing is missed between `ls` and the
# watch). A consumer that dies after claiming leaves its item in claimed/,
# where an operator (or a janitor) can put it back.
#
# Run:
#   examples/work-queue.sh produce MOUNTPOINT PAYLOAD...   one item per PAYLOAD
#   examples/work-queue.sh consume MOUNTPOINT NAME        until MOUNT/wq/done exists
#                                                         and the queue is empty
#   examples/work-queue.sh --demo
#       starts a 3-server ensemble (examples/ensemble-3.sh); two producers
#       on m1 add 20 items each while three consumers, one per mount, take
#       them; then checks that every item was processed exactly once
# Needs setfattr (package attr) and inotifywait (inotify-tools). The
# `zkfs` command is taken from $ZKFS, then PATH, then build/zkfs.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ZKFS=${ZKFS:-$(command -v zkfs || echo "$HERE/../build/zkfs")}
die() { echo "work-queue: $*" >&2; exit 1; }

setup() {                           # setup MOUNT: the two directories
    mkdir -p "$1/wq/queue" "$1/wq/claimed"
    setfattr -n user.zkfs.children -v sequential "$1/wq/queue"
}

produce() {                         # produce MOUNT PAYLOAD...
    local m=$1 p; shift
    for p in "$@"; do "$ZKFS" create -s "$m/wq/queue/item-" "$p"; done
}

consume() {                         # consume MOUNT NAME: prints "NAME ITEM PAYLOAD"
    local m=$1 name=$2 q=$1/wq/queue c=$1/wq/claimed item
    while :; do
        for item in "$q"/item-*; do  # lowest first: names sort by number
            item=${item##*/}
            mv "$q/$item" "$c/" 2>/dev/null || continue     # someone else's, or none
            echo "$name $item $(cat "$c/$item")"            # "process" it
            rm "$c/$item"
        done
        if [ -z "$(ls "$q")" ]; then
            [ -e "$m/wq/done" ] && return 0
            inotifywait -qq -t 1 -e create -e moved_to "$q" 2>/dev/null || true
        fi
    done
}

case "${1:-}" in
    produce) shift; [ $# -ge 2 ] || die "usage: produce MOUNT PAYLOAD..."
             [ -d "$1/wq/queue" ] || setup "$1"; produce "$@"; exit 0 ;;
    consume) [ $# -eq 3 ] || die "usage: consume MOUNT NAME"
             [ -d "$2/wq/queue" ] || setup "$2"; consume "$2" "$3"; exit 0 ;;
    --demo) ;;
    *) die "usage: work-queue.sh produce MOUNT PAYLOAD... | consume MOUNT NAME | --demo" ;;
esac

# --- demo -----------------------------------------------------------------
D=$(mktemp -d /tmp/zkfs-queue.XXXXXX)
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    "$HERE/ensemble-3.sh" --stop "$D" >/dev/null
    rm -rf --one-file-system "$D"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
"$HERE/ensemble-3.sh" --start "$D" | tail -n 1
setup "$D/m1"
"$ZKFS" sync "$D/m2" >/dev/null      # read barriers: m2 and m3 have
"$ZKFS" sync "$D/m3" >/dev/null      # applied the mkdirs

for i in 1 2 3; do
    consume "$D/m$i" "consumer-on-m$i" >"$D/consumed.$i" &
    PIDS+=($!)
done
N=20
produce "$D/m1" $(seq -f 'a-%g' $N) >"$D/produced.a" &
pa=$!
produce "$D/m1" $(seq -f 'b-%g' $N) >"$D/produced.b" &
pb=$!
wait $pa $pb
echo "produced $(cat "$D"/produced.? | wc -l) items, e.g. $(head -n 1 "$D/produced.a")"
: >"$D/m1/wq/done"                  # tells the consumers to stop when empty
for p in "${PIDS[@]}"; do
    wait "$p" || die "a consumer failed"
done
PIDS=()

echo "consumed, per consumer:"
for i in 1 2 3; do echo "  consumer-on-m$i: $(wc -l <"$D/consumed.$i") items"; done
echo "first lines: $(head -n 2 "$D/consumed.1" | tr '\n' ';')"
cat "$D"/consumed.? | awk '{ print $3 }' | sort >"$D/payloads"
dups=$(uniq -d "$D/payloads" | wc -l)
total=$(wc -l <"$D/payloads")
expected=$((2 * N))
echo "items processed: $total of $expected, processed twice: $dups," \
     "left in queue/claimed: $(find "$D/m2/wq/queue" "$D/m2/wq/claimed" -name 'item-*' | wc -l)"
if [ "$total" != "$expected" ] || [ "$dups" != 0 ]; then die "NOT exactly once"; fi
echo "every item was processed exactly once"
