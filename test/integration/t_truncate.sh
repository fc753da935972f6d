#!/usr/bin/env bash
# truncate(2) by path, with no descriptor of the caller's own (perl's
# truncate on a file name calls truncate(2); coreutils' truncate opens the
# file first and calls ftruncate): growing and shrinking, as the owner and
# as another user, on a file that is and is not open elsewhere. Once the
# daemon died in this call (an op field left uninitialised). Every step
# also checks that the daemon is still there and the value committed.
. "$(dirname "$0")/lib.sh"

D=$ZK_TMP/data
M=$ZK_TMP/mnt
chmod 755 "$ZK_TMP"
zk_start "$D" "$M"
chmod 755 "$M"

as_user() { setpriv --reuid=1000 --regid=1000 --clear-groups "$@"; }
# ptrunc FILE SIZE: truncate(2) on the path; prints the errno text on failure.
ptrunc() { perl -e 'truncate($ARGV[0], $ARGV[1]) or die "$!\n"' "$1" "$2"; }
hex() { od -An -tx1 "$1" | tr -d ' \n'; }
alive() {
    zk_pid_gone "$ZK_PID" && fail "the daemon died ($1)"
    zk_is_mounted "$M" || fail "the mount is gone ($1)"
}

log "owner, file not open: grow from empty, grow, shrink, to zero"
: >"$M/x"
ptrunc "$M/x" 567
alive "grow from empty"
assert_eq 567 "$(stat -c %s "$M/x")" "size after growing an empty file"
assert_eq 0 "$(tr -d '\0' <"$M/x" | wc -c)" "growth is zero-filled"
printf 'hello' >"$M/x"
ptrunc "$M/x" 8
assert_eq 68656c6c6f000000 "$(hex "$M/x")" "grow keeps the data and pads"
ptrunc "$M/x" 2
assert_eq 6865 "$(hex "$M/x")" "shrink"
ptrunc "$M/x" 0
assert_eq 0 "$(stat -c %s "$M/x")" "to zero"
assert_eq 1048576 "$(ptrunc "$M/x" 1048576 && stat -c %s "$M/x")" "grow to the 1 MiB limit"
assert_fail ptrunc "$M/x" 1048577
assert_match "too large" "$ZK_ERR" "past the limit: EFBIG"
assert_eq 1048576 "$(stat -c %s "$M/x")" "a refused truncate changes nothing"
alive "owner"

log "another user: refused without write permission, allowed with it"
printf 'abc' >"$M/y"
chmod 644 "$M/y"
assert_fail as_user perl -e 'truncate($ARGV[0], 10) or die "$!\n"' "$M/y"
assert_match "Permission denied" "$ZK_ERR" "truncate by a user without write permission"
assert_eq 616263 "$(hex "$M/y")" "a refused truncate changes nothing"
chmod 666 "$M/y"
as_user perl -e 'truncate($ARGV[0], 5) or die "$!\n"' "$M/y"
assert_eq 6162630000 "$(hex "$M/y")" "grow by another user"
as_user perl -e 'truncate($ARGV[0], 1) or die "$!\n"' "$M/y"
assert_eq 61 "$(hex "$M/y")" "shrink by another user"
assert_eq 0 "$(stat -c %u "$M/y")" "the owner stays"
alive "another user"

log "file open elsewhere: a reader keeps its version, a writer's close wins"
printf 'version-one' >"$M/z"
exec 7<"$M/z"
ptrunc "$M/z" 3
ptrunc "$M/z" 6
assert_eq 766572000000 "$(hex "$M/z")" "new readers see the truncated value"
assert_eq version-one "$(cat <&7)" "an open reader keeps the version it opened"
exec 7<&-
# A writer: bash's printf >&8 closes a dup of 8 after writing, which
# commits 'W' (every close is a commit point), then the path truncate
# extends the committed value; the writer's last close has nothing left.
exec 8>"$M/z"
printf 'W' >&8
ptrunc "$M/z" 40
assert_eq 40 "$(stat -c %s "$M/z")" "path truncate while a writer is open"
exec 8>&-
assert_eq "57$(printf '%078d' 0)" "$(hex "$M/z")" "truncate extends the writer's committed value"
exec 9>>"$M/z"                 # O_APPEND writer
ptrunc "$M/z" 3
printf 'ab' >&9
exec 9>&-
assert_eq 5700006162 "$(hex "$M/z")" "truncate, then append: the bytes land after"
alive "open elsewhere"

log "not a regular file"
mkdir "$M/dir"
assert_fail ptrunc "$M/dir" 3
assert_match "Is a directory" "$ZK_ERR" "truncate of a directory"
assert_fail ptrunc "$M/missing" 3
assert_match "No such file" "$ZK_ERR" "truncate of a missing file"
alive "errors"

log "O_RDONLY|O_TRUNC: committed at the release, and a stat right after close() sees it"
# (The kernel once kept the size a stat had got while the descriptor was
# open: such a descriptor did not count as a writer, so that size came
# with the day-long attribute timeout. Found through fsfuzz seed 7022.)
for i in 1 2 3; do
    head -c 131071 /dev/zero >"$M/t"
    out=$(perl -e 'use Fcntl; sysopen(my $fh, $ARGV[0], O_RDONLY|O_TRUNC) or die "$!\n";
                   my @a = stat($ARGV[0]); close($fh); my @b = stat($ARGV[0]);
                   print "$a[7] $b[7]\n"' "$M/t")
    assert_eq "131071 0" "$out" "size while open (committed) and right after close, round $i"
done
alive "O_RDONLY|O_TRUNC"

log "O_TRUNC then close: lseek(SEEK_END) on another descriptor sees the truncation"
# (The release's commit invalidated the inode's attributes after close()
# had returned: the kernel dropped the answer to the GETATTR that lseek
# had sent meanwhile and kept the size of before the truncation, 42 of
# 50 rounds. Found through fsfuzz seed 60166.)
out=$("$(zk_helper truncseek)" "$M/l" 100 2>&1) ||
    fail "truncseek: $out"
assert_eq "truncseek: 100 rounds, 0 stale" "$out" "lseek after an O_TRUNC close"
# The same with O_APPEND|O_TRUNC, whose truncation alone is also committed
# at the release (44 of 50 rounds stale before such a descriptor counted
# as a writer; fsfuzz seed 70056).
out=$("$(zk_helper truncseek)" "$M/l" 100 append 2>&1) ||
    fail "truncseek append: $out"
assert_eq "truncseek: 100 rounds, 0 stale" "$out" "lseek after an O_APPEND|O_TRUNC close"

log "truncate(2) beside a descriptor with a longer buffer: lseek sees the buffer (seed 72317)"
out=$("$(zk_helper truncseek)" "$M/p" 100 path 2>&1) ||
    fail "truncseek path: $out"
assert_eq "truncseek: 100 rounds, 0 stale" "$out" "lseek(SEEK_HOLE) after a path truncate"
alive "O_TRUNC, lseek"

log "the values survive a remount"
zk_stop "$M"
zk_start "$D" "$M"
assert_eq 61 "$(hex "$M/y")" "y after remount"
assert_eq 1048576 "$(stat -c %s "$M/x")" "x after remount"
zk_stop "$M"
