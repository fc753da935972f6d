#!/usr/bin/env bash
# config-watch.sh — configuration kept in zkfs, reloaded on every change.
#
# What it shows: the application's configuration is a znode,
# MOUNT/config/app.conf. A watcher uses inotify on the directory (not on
# the file: editors and `sed -i` save by writing a temporary file and
# renaming it over the old one, which is a new inode) and "reloads" — here,
# prints the new content — on IN_CLOSE_WRITE (a plain `echo >`, committed
# as one transaction at close) and IN_MOVED_TO (a rename into place). A
# reader never sees half a write: zkfs commits the whole file at close().
#
# Run:
#   examples/config-watch.sh [MOUNTPOINT]          watch and print reloads
#                                                  until Ctrl-C
#   examples/config-watch.sh --demo [MOUNTPOINT]   start the watcher, change
#                                                  the config twice (echo,
#                                                  then sed -i), show the
#                                                  reloads, stop the watcher
# MOUNTPOINT defaults to $ZKFS_MNT, then /mnt/zkfs (a mounted zkfs:
# `zkfs mount /mnt/zkfs`). Needs inotifywait (package inotify-tools).
set -euo pipefail

DEMO=0
if [ "${1:-}" = "--demo" ]; then DEMO=1; shift; fi
M=${1:-${ZKFS_MNT:-/mnt/zkfs}}
CONF_DIR=$M/config
CONF=$CONF_DIR/app.conf

die() { echo "config-watch: $*" >&2; exit 1; }

awk -v m="$(cd "$M" 2>/dev/null && pwd -P)" \
    '$5 == m && $(NF-2) ~ /^fuse\.zkfs/ { f = 1 } END { exit !f }' \
    /proc/self/mountinfo 2>/dev/null ||
    die "$M is not a zkfs mount (start one: zkfs mount $M)"
command -v inotifywait >/dev/null ||
    die "inotifywait not found (apt-get install inotify-tools)"

mkdir -p "$CONF_DIR"
[ -e "$CONF" ] || printf 'level=warn\nport=8080\n' >"$CONF"

# Reads event names (one per line) and reloads when app.conf changed.
reload_loop() {
    local name n=0
    while IFS= read -r name; do
        [ "$name" = "app.conf" ] || continue   # e.g. sed's temporary file
        n=$((n + 1))
        echo "reload #$n: $CONF now reads:"
        sed 's/^/    /' "$CONF"
    done
}

if [ "$DEMO" = 0 ]; then
    echo "watching $CONF (Ctrl-C to stop); current content:"
    sed 's/^/    /' "$CONF"
    inotifywait -m -q -e close_write,moved_to --format '%f' "$CONF_DIR" |
        reload_loop
    exit 0
fi

# --- demo: watcher in the background, two changes, then stop it ---------
WORK=$(mktemp -d)
IPID="" RPID=""
cleanup() {
    [ -z "$IPID" ] || kill "$IPID" 2>/dev/null || true
    [ -z "$RPID" ] || wait "$RPID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

mkfifo "$WORK/events"
inotifywait -m -e close_write,moved_to --format '%f' "$CONF_DIR" \
    >"$WORK/events" 2>"$WORK/inotify.err" &
IPID=$!
reload_loop <"$WORK/events" | tee "$WORK/reloads" &
RPID=$!

# inotifywait says when its watch is in place; wait for that (bounded).
for _ in $(seq 100); do
    grep -q 'Watches established' "$WORK/inotify.err" && break
    sleep 0.05
done
grep -q 'Watches established' "$WORK/inotify.err" ||
    die "inotifywait did not start: $(cat "$WORK/inotify.err")"

# wait_reloads N: until the watcher printed N reloads (at most 5 s).
wait_reloads() {
    for _ in $(seq 100); do
        [ "$(grep -c '^reload #' "$WORK/reloads" || true)" -ge "$1" ] && return 0
        sleep 0.05
    done
    echo "config-watch: no reload seen within 5 s: inotify events for this" \
         "change are not working in this zkfs build" >&2
    return 1
}

echo "watcher running (inotifywait pid $IPID)"
printf '%s\n' "\$ printf 'level=info\\nport=8080\\n' > $CONF"
printf 'level=info\nport=8080\n' >"$CONF"
wait_reloads 1 || true
echo "\$ sed -i 's/level=info/level=debug/' $CONF    # temp file + rename"
sed -i 's/level=info/level=debug/' "$CONF"
wait_reloads 2 || true

kill "$IPID"
wait "$RPID" 2>/dev/null || true
IPID="" RPID=""
echo "watcher stopped; $(grep -c '^reload #' "$WORK/reloads" || true) reload(s) seen"
