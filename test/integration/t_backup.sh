#!/usr/bin/env bash
# Backups: `zkfs snapshot save` of a mount holding 100,000 znodes while a
# writer keeps committing, `zkfs snapshot restore` into a new data
# directory, `zkfs check` of it, and a mount of the restored store that
# shows the same tree: names, kinds, sizes, modes, owners, times, every
# directory's ZooKeeper stat, the data of the test's own nodes and of a
# sample of the bulk; ephemerals left out (their parent's numChildren
# follows, its cversion does not go back), the sequence counter kept,
# the concurrent writer's files a gap-free prefix (one committed version).
# A second save from the restored mount has the same stream as the first
# (the zxid and the meta counters aside). Bad inputs: a truncated file, a
# flipped byte, a file that is not a backup, an empty file, a non-empty or
# unusable target, wrong usage, a non-root caller: each a clear error and
# nothing written.
. "$(dirname "$0")/lib.sh"

POPULATE=$(dirname "$ZKFS")/bench/populate
[ -x "$POPULATE" ] || fail "no $POPULATE (make builds it)"
D=$ZK_TMP/d
M=$ZK_TMP/m
R=$ZK_TMP/r
M2=$ZK_TMP/m2

log "100,000 znodes: 99,990 from populate, the rest through the mount"
mkdir -p "$D"
"$POPULATE" --data "$D" --znodes 99990 >/dev/null
zk_start "$D" "$M"
mkdir "$M/app" "$M/q" "$M/svc" "$M/busy"
printf 'level=debug\n' >"$M/app/config"
printf 'v2\n' >"$M/app/config"                 # version 1
head -c 3000 /dev/urandom >"$M/app/blob"
chmod 600 "$M/app/blob"
setfattr -n user.zkfs.data -v 'dir data' "$M/app"
setfattr -n user.zkfs.children -v sequential "$M/q"
for i in 1 2 3 4 5; do "$ZKFS" create -s "$M/q/job-" "job $i" >/dev/null; done
"$ZKFS" rm "$M/q/job-0000000001"
"$ZKFS" rm "$M/q/job-0000000003"
setfattr -n user.zkfs.children -v ephemeral "$M/svc"
exec 7>"$M/svc/web-1" 8>"$M/svc/web-2"         # held by this shell
echo 'persistent' >"$M/app/keep"
"$ZKFS" create -e "$M/app/lease" held -- sleep 600 >/dev/null &
ZK_PIDS+=($!)
wait_for test -e "$M/app/lease"
znodes=$("$ZKFS" status --json "$M" | grep -o '"znodes":[0-9]*' | cut -d: -f2)
[ "$znodes" -ge 100000 ] || fail "only $znodes znodes"
log "$znodes znodes, 3 of them ephemeral"

log "save while a writer commits one file after another"
writer() {
    local i=0
    while :; do
        i=$((i + 1))
        echo "w$i" >"$M/busy/f$i" || return 0
    done
}
zk_bg writer
wpid=$ZK_BG
# f4 seen: f3's close returned (a new file shows on its own mount while
# its create is still pending, prov.c, so f3 alone proves nothing).
wait_for test -e "$M/busy/f4"
assert_rc 0 "$ZKFS" snapshot save "$M" "$ZK_TMP/a.zks"
assert_match '^zkfs snapshot: saved zxid 0x[0-9a-f]{16}, [0-9]+ znodes to ' "$ZK_ERR"
kill "$wpid"
wait "$wpid" 2>/dev/null || true
[ -s "$ZK_TMP/a.zks" ] || fail "no backup file"
ls "$ZK_TMP" | grep -q 'a.zks\.' && fail "a temporary file was left beside the backup"
assert_eq 600 "$(stat -c %a "$ZK_TMP/a.zks")" "backup file mode"
raw_bytes=$(stat -c %s "$D/zkfs.mdb")
log "backup: $(stat -c %s "$ZK_TMP/a.zks") bytes (store file $raw_bytes)"
assert_eq ZKBK "$(head -c 4 "$ZK_TMP/a.zks")" "magic"

log "the same to standard output"
"$ZKFS" snapshot save "$M" - >"$ZK_TMP/stdout.zks" 2>/dev/null ||
    fail "save to standard output"
assert_eq ZKBK "$(head -c 4 "$ZK_TMP/stdout.zks")" "magic on standard output"

log "into a FIFO: written straight, the FIFO stays one"
mkfifo "$ZK_TMP/fifo"
cat "$ZK_TMP/fifo" >"$ZK_TMP/fifo.zks" &
cpid=$!
assert_rc 0 "$ZKFS" snapshot save "$M" "$ZK_TMP/fifo"
wait "$cpid"
[ -p "$ZK_TMP/fifo" ] || fail "the FIFO was replaced"
assert_eq ZKBK "$(head -c 4 "$ZK_TMP/fifo.zks")" "magic through the FIFO"

log "restore, check, mount"
assert_rc 0 "$ZKFS" snapshot restore "$ZK_TMP/a.zks" --data "$R"
assert_match "restored zxid 0x[0-9a-f]{16}, [0-9]+ znodes into $R\$" "$ZK_ERR"
assert_rc 0 "$ZKFS" check "$R"
assert_match ': ok: [0-9]+ znodes .* 0 sessions, 0 ephemerals, 0 lock tables, 0 log entries.*; 0 problems$' "$ZK_OUT"
zk_start "$R" "$M2"

log "a save from the restored mount has the same stream (zxid, meta aside)"
assert_rc 0 "$ZKFS" snapshot save "$M2" "$ZK_TMP/b.zks"
# Skips the stream's header (16 bytes) and its five meta records (129
# bytes: last_applied differs), and the end record (13: its crc).
stream() { tail -c +49 "$1" | head -c -16 | zstd -dq | tail -c +146 | head -c -13; }
[ "$(stream "$ZK_TMP/a.zks" | wc -c)" -gt 1000000 ] || fail "the stream is short"
assert_eq "$(stream "$ZK_TMP/a.zks" | md5sum)" "$(stream "$ZK_TMP/b.zks" | md5sum)" \
    "the tables of the two streams"

log "the tree is the original's (ephemerals and the writer's files aside)"
listing() {
    (cd "$1" && find . -path ./busy -prune -o -path ./svc -prune -o \
        -path ./app/lease -prune -o -printf '%P|%y|%s|%m|%U|%G|%T@\n' | sort)
}
listing "$M" >"$ZK_TMP/l1"
listing "$M2" >"$ZK_TMP/l2"
[ "$(wc -l <"$ZK_TMP/l1")" -ge 99990 ] || fail "the listing is short"
cmp "$ZK_TMP/l1" "$ZK_TMP/l2" || fail "listings differ: $(diff "$ZK_TMP/l1" "$ZK_TMP/l2" | head)"
stats() {
    (cd "$1" && find . -path ./busy -prune -o -path ./svc -prune -o \
        -path ./app -prune -o -type d -print0 |
        sort -z | xargs -0 getfattr -d -m '^user\.zk' | grep -v '^$')
}
stats "$M" >"$ZK_TMP/s1"
stats "$M2" >"$ZK_TMP/s2"
grep -q '^# file: q$' "$ZK_TMP/s1" || fail "no stat of q in the dump"
cmp "$ZK_TMP/s1" "$ZK_TMP/s2" || fail "directory stats differ: $(diff "$ZK_TMP/s1" "$ZK_TMP/s2" | head)"
for f in app/config app/blob app/keep q/job-0000000000 q/job-0000000004; do
    cmp "$M/$f" "$M2/$f" || fail "$f differs"
    assert_eq "$(getfattr -d -m '^user\.zk' "$M/$f" 2>/dev/null | tail -n +2)" \
        "$(getfattr -d -m '^user\.zk' "$M2/$f" 2>/dev/null | tail -n +2)" "stat of $f"
done
assert_eq 'dir data' "$(xattr "$M2/app" user.zkfs.data)" "a directory's data"
zkstat() { getfattr -d -m '^user\.zk\.' "$1" 2>/dev/null | grep '^user' | grep -v numChildren; }
assert_eq "$(zkstat "$M/app")" "$(zkstat "$M2/app")" "stat of app (numChildren aside)"
sample() { (cd "$1" && find populate -type f | sort | awk 'NR % 97 == 1' | xargs cat | md5sum); }
assert_eq "$(sample "$M")" "$(sample "$M2")" "data of every 97th bulk file"

log "ephemerals are left out; their directory keeps its cversion"
assert_eq "" "$(ls -A "$M2/svc")" "restored svc"
[ -e "$M2/app/lease" ] && fail "the ephemeral app/lease was restored"
assert_eq 4 "$(xattr "$M/app" user.zk.numChildren)" "app numChildren, original"
assert_eq 3 "$(xattr "$M2/app" user.zk.numChildren)" "app numChildren, restored"
assert_eq 0 "$(xattr "$M2/svc" user.zk.numChildren)" "svc numChildren"
assert_eq "$(xattr "$M/svc" user.zk.cversion)" "$(xattr "$M2/svc" user.zk.cversion)" "svc cversion"
assert_eq ephemeral "$(xattr "$M2/svc" user.zkfs.children)" "svc children kind"

log "the sequence counter goes on where it was"
assert_eq 3 "$(xattr "$M2/q" user.zk.numChildren)" "q numChildren"
assert_rc 0 "$ZKFS" create -s "$M2/q/job-" next
# 5 creates and 2 deletes: cversion 7 (ZooKeeper counts both).
assert_eq 7 "$(xattr "$M/q" user.zk.cversion)" "q cversion, original"
assert_eq "$M2/q/job-0000000007" "$ZK_OUT" "next sequential name"

log "the writer's files: a gap-free prefix, each with its own data"
n=$(ls "$M2/busy" | wc -l)
[ "$n" -ge 3 ] || fail "only $n of the writer's files"
# The shell's open(O_CREAT) commits the empty file, its close the data:
# the snapshot may fall between the two for the last file.
for i in $(seq 1 "$n"); do
    d=$(cat "$M2/busy/f$i") || fail "busy/f$i is missing (of $n)"
    [ "$d" = "w$i" ] || { [ "$i" = "$n" ] && [ -z "$d" ]; } ||
        fail "busy/f$i holds [$d] (of $n)"
done

log "bad inputs: a clear error, nothing written"
bad() {   # FILE DIR MESSAGE-REGEX
    assert_rc 1 "$ZKFS" snapshot restore "$1" --data "$2"
    assert_match "$3" "$ZK_ERR" "restore $1"
    [ -e "$2" ] && [ -n "$(ls -A "$2")" ] && fail "$2 is not empty after a failed restore"
    return 0
}
size=$(stat -c %s "$ZK_TMP/a.zks")
head -c $((size / 2)) "$ZK_TMP/a.zks" >"$ZK_TMP/half.zks"
bad "$ZK_TMP/half.zks" "$ZK_TMP/x1" 'truncated'
head -c $((size - 1)) "$ZK_TMP/a.zks" >"$ZK_TMP/short.zks"
bad "$ZK_TMP/short.zks" "$ZK_TMP/x1" 'truncated'
head -c 30 "$ZK_TMP/a.zks" >"$ZK_TMP/tiny.zks"
bad "$ZK_TMP/tiny.zks" "$ZK_TMP/x1" 'truncated'
for pos in 20 $((size / 3)) $((size - 2)); do
    cp "$ZK_TMP/a.zks" "$ZK_TMP/flip.zks"
    b=$(od -An -tu1 -j "$pos" -N1 "$ZK_TMP/flip.zks" | tr -d ' ')
    printf "\\$(printf '%03o' $((b ^ 1)))" |
        dd of="$ZK_TMP/flip.zks" bs=1 seek="$pos" conv=notrunc status=none
    bad "$ZK_TMP/flip.zks" "$ZK_TMP/x1" 'checksum mismatch: the file is corrupt'
done
bad /etc/hostname "$ZK_TMP/x1" 'not a zkfs snapshot file'
: >"$ZK_TMP/empty.zks"
bad "$ZK_TMP/empty.zks" "$ZK_TMP/x1" 'not a zkfs snapshot file'
bad "$ZK_TMP" "$ZK_TMP/x1" 'not a regular file|Is a directory'
bad "$ZK_TMP/none.zks" "$ZK_TMP/x1" 'No such file'
[ -e "$ZK_TMP/x1" ] && fail "a failed restore left its directory"
mkdir "$ZK_TMP/full" && echo x >"$ZK_TMP/full/keep"
assert_rc 1 "$ZKFS" snapshot restore "$ZK_TMP/a.zks" --data "$ZK_TMP/full"
assert_match 'not empty: restore makes a new data directory' "$ZK_ERR"
assert_eq keep "$(ls "$ZK_TMP/full")" "the non-empty directory is untouched"
assert_rc 1 "$ZKFS" snapshot restore "$ZK_TMP/a.zks" --data "$ZK_TMP/no/such/dir"
# A full disk: the write-ahead log's first segment does not fit (1 MiB),
# or it does and the tree's pages do not (8600 KiB: two 4 MiB segments
# during the install); either way ENOSPC and nothing left behind.
for sz in 1m 8600k; do
    zk_tmpfs "$ZK_TMP/small-$sz" "$sz"
    mkdir "$ZK_TMP/small-$sz/kept"
    bad "$ZK_TMP/a.zks" "$ZK_TMP/small-$sz/new" 'No space left on device'
    bad "$ZK_TMP/a.zks" "$ZK_TMP/small-$sz/kept" 'No space left on device'
    assert_eq kept "$(ls -A "$ZK_TMP/small-$sz")" "a $sz disk after failed restores"
done
assert_rc 2 "$ZKFS" snapshot restore "$ZK_TMP/a.zks"
assert_rc 2 "$ZKFS" snapshot save "$M"
assert_rc 2 "$ZKFS" snapshot backup "$M" x
assert_rc 2 "$ZKFS" snapshot
assert_rc 1 "$ZKFS" snapshot save /tmp "$ZK_TMP/y.zks"
assert_match 'not inside a zkfs mount' "$ZK_ERR"
assert_rc 1 "$ZKFS" snapshot save "$M" "$ZK_TMP/no/such/file"
[ -e "$ZK_TMP/y.zks" ] && fail "a failed save wrote its file"

log "only root or the daemon's user may save (a backup bypasses permissions)"
chmod 755 "$ZK_TMP"
assert_rc 1 setpriv --reuid=65534 --regid=65534 --clear-groups \
    "$ZKFS" snapshot save "$M" /tmp/zkfs-nobody.$$.zks
assert_match 'Operation not permitted' "$ZK_ERR"
[ -e /tmp/zkfs-nobody.$$.zks ] && { rm -f /tmp/zkfs-nobody.$$.zks; fail "nobody saved a backup"; }

log "zkfs check refuses a data directory in use, and what is not a store"
assert_rc 1 "$ZKFS" check "$D"
assert_match 'in use by a running daemon' "$ZK_ERR"
assert_rc 1 "$ZKFS" check "$ZK_TMP/full"
assert_rc 2 "$ZKFS" check
exec 7>&- 8>&-
zk_stop "$M2"
zk_stop "$M"
log "the original store, stopped, checks sound too"
assert_rc 0 "$ZKFS" check "$D"
assert_match '; 0 problems$' "$ZK_OUT"
