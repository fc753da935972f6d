#!/usr/bin/env bash
# One transaction per new file (fs/prov.c), on one mount: `echo x > new`
# is one committed transaction; a new file still open can be read by
# another process (empty: what was written is not committed before the
# close), renamed, unlinked, fsynced, locked, given xattrs, and mkdir of
# its name fails, each committing the create first; `: > new`
# and touch create; names over the limits still fail at open; a new file
# whose writes pass 1 MiB is created empty; once committed, the kernel
# keeps one inode for it (rename onto itself works); 8 shells writing new files
# into one directory all land complete.
. "$(dirname "$0")/lib.sh"

M=$ZK_TMP/mnt
zk_start "$ZK_TMP/data" "$M"

# metric NAME: a counter of the mount's metrics file.
metric() { zk_metric "$M" "$1"; }


log "echo x > new: one transaction"
t0=$(metric zkfs_transactions_applied_total)
echo hello >"$M/one"
t1=$(metric zkfs_transactions_applied_total)
assert_eq 1 $((t1 - t0)) "transactions for echo > new file"
assert_eq hello "$(cat "$M/one")" "content"
assert_eq 0 "$(xattr "$M/one" user.zk.version)" "version of the new file"
p0=$(metric zkfs_provisional_creates_total)
[ "${p0:-0}" -ge 1 ] || fail "no provisional create counted"

log "while open: listed here; another open commits the create alone (and reads it empty)"
fds a "$M/a" open w:abc say:open wait w:def close
wait_for fds_said a open || fail "fdscript a did not open"
assert_eq a "$(ls "$M" | grep -x a)" "ls shows the new file"
f0=$(metric zkfs_provisional_creates_forced_total)
assert_eq "" "$(cat "$M/a")" "a second open reads what was committed: nothing yet"
f1=$(metric zkfs_provisional_creates_forced_total)
assert_eq 1 $((f1 - f0)) "creates committed early"
fds_end
assert_eq 0 "$FDS_RC" "close after the second open ($(cat "$ZK_TMP/a.err"))"
assert_eq abcdef "$(cat "$M/a")" "content after the close"

log "fsync of a new file commits it; close commits the rest"
fds b "$M/b" open w:one fsync say:synced wait w:two close
wait_for fds_said b synced || fail "fdscript b did not fsync: $(cat "$ZK_TMP/b.err")"
assert_eq 0 "$(xattr "$M/b" user.zk.version)" "version after the fsync"
assert_eq one "$(cat "$M/b")" "content after the fsync"
fds_end
assert_eq 0 "$FDS_RC" "close after fsync ($(cat "$ZK_TMP/b.err"))"
assert_eq onetwo "$(cat "$M/b")" "content after the close"

log "rename of a new file still open"
fds c "$M/c" open w:abc say:open wait w:def close
wait_for fds_said c open || fail "fdscript c did not open"
mv "$M/c" "$M/c2"
fds_end
assert_eq 0 "$FDS_RC" "close after the rename ($(cat "$ZK_TMP/c.err"))"
assert_eq abcdef "$(cat "$M/c2")" "renamed file's content"
[ ! -e "$M/c" ] || fail "c still exists after mv c c2"

log "rename onto a new file still open replaces it"
echo other >"$M/o"
fds r "$M/r" open w:abc say:open wait w:def close
wait_for fds_said r open || fail "fdscript r did not open"
mv "$M/o" "$M/r"
fds_end
assert_eq "close: No such file or directory" "$(cat "$ZK_TMP/r.err")" \
    "close of the replaced file"
assert_eq other "$(cat "$M/r")" "the rename's source replaced it"

log "unlink of a new file still open: its close reports the node gone"
fds d "$M/d" open w:abc say:open wait w:def close
wait_for fds_said d open || fail "fdscript d did not open"
rm "$M/d"
[ ! -e "$M/d" ] || fail "d still exists after rm"
fds_end
assert_eq 1 "$FDS_RC" "close after unlink"
assert_eq "close: No such file or directory" "$(cat "$ZK_TMP/d.err")" \
    "error of close after unlink"
[ ! -e "$M/d" ] || fail "d exists again after its close"

log "mkdir of the name, flock, setfattr on a new file still open"
fds e "$M/e" open w:abc say:open wait close
wait_for fds_said e open || fail "fdscript e did not open"
assert_fail mkdir "$M/e"
assert_match "File exists" "$ZK_ERR" "mkdir of a pending file's name"
flock -n "$M/e" true || fail "flock of a new file"
setfattr -n user.zkfs.data -v x "$M/e" 2>/dev/null &&
    fail "user.zkfs.data set on a file"
fds_end
assert_eq 0 "$FDS_RC" "close ($(cat "$ZK_TMP/e.err"))"
assert_eq abc "$(cat "$M/e")" "content"

log "after the commit, one inode: rename onto itself by another user (seed 70714)"
# The kernel keeps the new file under its provisional nodeid; entries
# name that one until it is forgotten. Were the name's LOOKUP to give the
# committed inode, rename(f, f) would be a rename between two inodes,
# refused by the kernel (EACCES: uid 1000 may not write to ro/).
chmod 755 "$ZK_TMP" "$M"
mkdir -m 0755 "$M/ro"
echo x >"$M/ro/f"
setpriv --reuid=1000 --regid=1000 --clear-groups cat "$M/ro/f" >/dev/null ||
    fail "uid 1000 cannot reach the file"
i0=$(stat -c %i "$M/ro/f")
setpriv --reuid=1000 --regid=1000 --clear-groups \
    perl -e 'rename($ARGV[0], $ARGV[0]) or die "rename: $!\n"' "$M/ro/f" \
    2>"$ZK_TMP/ren.err" || fail "rename onto itself: $(cat "$ZK_TMP/ren.err")"
assert_eq "$i0" "$(stat -c %i "$M/ro/f")" "inode number after the rename"
assert_eq x "$(cat "$M/ro/f")" "content after the rename"

log "fstat of a deleted new file: the size committed before the delete (seed 71611)"
# Create (provisional), write, a second open commits the create alone, a
# forked child's exit (a FLUSH) commits the data, then the file is
# deleted: fstat through the first descriptor must give the committed
# size (3), not the one as of its open (0).
out=$(perl -MPOSIX -MFcntl -e '
    my $p = $ARGV[0];
    sysopen(my $f, $p, O_RDWR | O_CREAT, 0644) or die "open: $!";
    syswrite($f, "abc") == 3 or die "write: $!";
    open(my $g, "<", $p) or die "second open: $!"; close($g);
    my $pid = fork(); POSIX::_exit(0) if $pid == 0; waitpid($pid, 0);
    unlink($p) or die "unlink: $!";
    my @s = stat($f);
    sysseek($f, 0, 0); sysread($f, my $b, 8);
    print "$s[7] $s[3] $b\n";' "$M/gone") || fail "perl: $out"
assert_eq "3 0 abc" "$out" "size, nlink and content of the deleted file"

log "files created without writing: : > f, touch, creat() + close()"
: >"$M/empty"
[ -f "$M/empty" ] || fail ": > empty did not create it"
assert_eq 0 "$(xattr "$M/empty" user.zk.version)" "version of the empty file"
touch "$M/touched"
[ -f "$M/touched" ] || fail "touch did not create"
"$(zk_helper fdscript)" "$M/creat" open close || fail "creat + close"
wait_for test -f "$M/creat" || fail "creat + close did not create"

log "bad names still fail at open"
assert_fail bash -c "echo x >'$M/$(printf 'x%.0s' $(seq 1 256))'"
assert_match "File name too long" "$ZK_ERR" "256-byte name"
assert_fail bash -c "echo x >'$M/$(printf 'a\tb')'"
assert_match "Invalid argument" "$ZK_ERR" "name with a control character"
mkdir "$M/dir"
assert_fail bash -c "echo x >'$M/dir'"
assert_match "Is a directory" "$ZK_ERR" "open(O_CREAT) of a directory"

log "a new file written past 1 MiB is created empty (nothing of its data)"
assert_fail bash -c "head -c 1100000 /dev/zero >'$M/big'"
assert_match "File too large" "$ZK_ERR" "writing 1.1 MB"
wait_for test -e "$M/big" || fail "big does not exist after a failed write"
assert_eq 0 "$(stat -c %s "$M/big")" "size of big"

log "8 shells writing new files into one directory"
mkdir "$M/q"
pids=()
for p in 1 2 3 4 5 6 7 8; do
    (for i in $(seq 1 40); do echo "p$p-$i" >"$M/q/f$p-$i" || exit 1; done) &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || fail "a writer failed"; done
assert_eq 320 "$(ls "$M/q" | wc -l)" "files written"
for p in 1 8; do
    for i in 1 40; do assert_eq "p$p-$i" "$(cat "$M/q/f$p-$i")" "f$p-$i"; done
done
bad=$(for f in "$M"/q/*; do n=${f##*/f}; [ "$(cat "$f")" = "p$n" ] || echo "$f"; done)
assert_eq "" "$bad" "files with the wrong content"

log "the same after a remount"
zk_stop "$M"
zk_start "$ZK_TMP/data" "$M"
assert_eq abcdef "$(cat "$M/a")" "a after remount"
assert_eq 320 "$(ls "$M/q" | wc -l)" "files after remount"
log "ok"
