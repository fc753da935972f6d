#!/usr/bin/env bash
# ensemble-3.sh — a 3-server zkfs ensemble on one machine (loopback).
#
# What it shows: what an operator does on three hosts, here in one
# directory: one config file per server (zoo.cfg keys: dataDir, secretFile,
# server.N=host:port — one TCP port per server, for votes and replication
# alike), one shared secret, `zkfs mount -c CFG --id N MOUNTPOINT` on each,
# `zkfs status` to see who leads, a write through one mount read through
# another, and `zkfs umount` on each to stop.
#
# Run (as root: FUSE mounts):
#   examples/ensemble-3.sh [DIR]
#       the whole story in DIR (default: a new temporary directory, removed
#       at the end): start, status, write on m1, read on m3, stop
#   examples/ensemble-3.sh --start DIR
#       starts the three servers in DIR and leaves them running: mounts
#       DIR/m1 DIR/m2 DIR/m3, logs DIR/zkfs.N.log, pids DIR/pid.N
#   examples/ensemble-3.sh --stop DIR
#       `zkfs umount` of each, then waits (bounded) for the three daemons
# The `zkfs` command is taken from $ZKFS, then PATH, then this
# repository's build/zkfs. Ports: three free ones picked at random.
set -euo pipefail

MODE=demo
case "${1:-}" in --start|--stop) MODE=${1#--}; shift ;; esac
HERE=$(cd "$(dirname "$0")" && pwd)
ZKFS=${ZKFS:-$(command -v zkfs || echo "$HERE/../build/zkfs")}

die() { echo "ensemble-3: $*" >&2; exit 1; }
mounted() { awk -v m="$1" '$5 == m { f = 1 } END { exit !f }' /proc/self/mountinfo; }
alive() { [ -d "/proc/$1" ] && [ "$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null)" != Z ]; }

start() {                           # start DIR
    local d=$1 base i j
    mkdir -p "$d"
    d=$(cd "$d" && pwd)
    # Three free ports next to each other (ss lists the ones in use).
    for _ in $(seq 50); do
        base=$((20000 + RANDOM % 40000))
        ss -Htan | awk '{ print $4 }' | grep -Eq ":($((base + 1))|$((base + 2))|$((base + 3)))$" || break
    done
    # One secret for the whole ensemble; on real hosts, copy this file.
    head -c 32 /dev/urandom >"$d/secret"
    chmod 600 "$d/secret"
    for i in 1 2 3; do
        {
            echo "dataDir=$d/d$i"
            echo "secretFile=$d/secret"
            echo "tickTime=200"
            echo "initLimit=50"
            echo "syncLimit=5"
            echo "sessionTimeout=4000"
            for j in 1 2 3; do echo "server.$j=127.0.0.1:$((base + j))"; done
        } >"$d/z$i.cfg"
        mkdir -p "$d/m$i"
    done
    echo "config of server 1 ($d/z1.cfg):"
    sed 's/^/    /' "$d/z1.cfg"
    for i in 1 2 3; do
        # -f: foreground, so that we know the pid; the log says what happens.
        "$ZKFS" mount -f -c "$d/z$i.cfg" --id "$i" "$d/m$i" >"$d/zkfs.$i.log" 2>&1 &
        echo $! >"$d/pid.$i"
    done
    # A mount appears once its server has joined a leader (bounded wait).
    for i in 1 2 3; do
        for _ in $(seq 300); do mounted "$d/m$i" && break; sleep 0.1; done
        mounted "$d/m$i" || { tail -n 5 "$d/zkfs.$i.log" >&2; stop "$d"; die "server $i did not mount"; }
    done
    echo "started: $d/m1 $d/m2 $d/m3 (pids $(cat "$d"/pid.? | tr '\n' ' '))"
}

stop() {                            # stop DIR
    local d=$1 i p
    # All three at once: each leaves while the other two still form a
    # quorum (the last one alone cannot commit the close of its session).
    for i in 1 2 3; do
        mounted "$d/m$i" && { "$ZKFS" umount "$d/m$i" || true; } &
    done
    wait
    for i in 1 2 3; do
        p=$(cat "$d/pid.$i" 2>/dev/null) || continue
        for _ in $(seq 100); do alive "$p" || break; sleep 0.1; done
        alive "$p" && { echo "server $i (pid $p) still running: SIGTERM" >&2; kill "$p"; }
        rm -f "$d/pid.$i"
    done
    echo "stopped"
}

case $MODE in
    start) start "${1:?usage: ensemble-3.sh --start DIR}"; exit 0 ;;
    stop) stop "${1:?usage: ensemble-3.sh --stop DIR}"; exit 0 ;;
esac

# --- the whole story --------------------------------------------------------
if [ $# -gt 0 ]; then D=$1 KEEP=1; else D=$(mktemp -d /tmp/zkfs-ensemble.XXXXXX) KEEP=0; fi
cleanup() {
    echo "--- zkfs umount on each"
    stop "$D"
    [ "$KEEP" = 1 ] || rm -rf --one-file-system "$D"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
start "$D"
D=$(cd "$D" && pwd)

for i in 1 2 3; do
    echo "--- zkfs status $D/m$i"
    "$ZKFS" status "$D/m$i" | grep -E '^(role|id|leader|epoch|zxid|stale) '
done

echo "--- write through m1, read through m3"
echo "hello from server 1 at $(date -u +%T)" >"$D/m1/greeting"
"$ZKFS" sync "$D/m3/greeting"        # read barrier: m3 has applied the write
echo "m3 reads: $(cat "$D/m3/greeting")"
echo "--- ls -l through m2"
ls -l "$D/m2"
