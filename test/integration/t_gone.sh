#!/usr/bin/env bash
# Descriptors of deleted nodes answer as on a local file system (issue 8,
# two findings of the syscall fuzzer): a read on an O_RDWR|O_APPEND
# descriptor returns the content committed when the node was deleted (it
# failed with ENOENT), and fstat of an O_PATH descriptor returns the
# node's last attributes with st_nlink 0 (it failed with ESTALE) — after a
# local unlink/rmdir and after a delete this mount did not make (zkfs rm
# through the control file, replayed by the echo thread); an ftruncate
# of a deleted file sets the size a dup of it seeks in; an O_APPEND
# descriptor of a new file reads it after a replace; and fstat of a
# descriptor opened on a provisional create's nodeid says st_nlink 0 as
# soon as unlink() or rename() over its name returned.
. "$(dirname "$0")/lib.sh"

M=$ZK_TMP/mnt
zk_start "$ZK_TMP/data" "$M"
GONE=$(zk_helper gone)

log "O_RDWR|O_APPEND: reads after the unlink"
mkdir "$M/d"
out=$("$GONE" append "$M/d") || fail "append read of a deleted file: $out"

log "O_PATH fstat after a local unlink"
printf 'xyz' >"$M/f1"
chmod 640 "$M/f1"
out=$("$GONE" opath "$M/f1" "rm '$M/f1'") || fail "unlink: $out"

log "O_PATH fstat after a local rmdir"
mkdir "$M/e1"
out=$("$GONE" opath "$M/e1" "rmdir '$M/e1'") || fail "rmdir: $out"

log "O_PATH fstat after zkfs rm (a delete this mount's kernel did not make)"
printf 'hello' >"$M/f2"
out=$("$GONE" opath "$M/f2" "'$ZKFS' rm '$M/f2'") || fail "zkfs rm: $out"

log "O_PATH fstat after a rename over it"
printf '12345678' >"$M/f3"
printf 'new' >"$M/f4"
out=$("$GONE" opath "$M/f3" "mv '$M/f4' '$M/f3.x' && mv '$M/f3.x' '$M/f3' && rm '$M/f3'") ||
    fail "rename over: $out"

log "ftruncate of a deleted file, then lseek(SEEK_END) through a dup (seed 71701)"
# The truncation changes the descriptor's buffer only (the node is gone);
# a dup of it seeks in that buffer, as it would before the delete. The
# SETATTR's answer carried the size as of the open, cached for a day.
out=$(perl -MFcntl -e '
    sysopen(my $f, $ARGV[0], O_RDWR | O_CREAT | O_EXCL, 0644) or die "open: $!";
    unlink($ARGV[0]) or die "unlink: $!";
    open(my $d, "+<&", $f) or die "dup: $!";
    truncate($f, 65537) or die "ftruncate: $!";
    my $r = sysseek($d, -4095, 2);
    print defined $r ? "$r\n" : "lseek: $!\n";' "$M/t71701") || fail "perl: $out"
assert_eq 61442 "$out" "lseek(SEEK_END) after ftruncate of a deleted file"

# A descriptor opened on a provisional create's nodeid, then a listing of
# the directory: it gave the committed inode for the name, so the kernel
# held the file as two inodes; the unlink (or rename over it) went through
# the committed one and the descriptor's inode kept st_nlink 1 (fsfuzz
# seed 70612; with the daemon of afea634 55-71 of 100 rounds stale after
# an unlink, 83-97 after a rename over it). Entries now name the
# provisional nodeid while the kernel holds it (fs/util.c,
# zk__fs_entry_param): one inode, which the unlink itself updates.
log "fstat after an unlink of a provisionally created file, 200 rounds"
mkdir "$M/al"
out=$("$GONE" alias "$M/al" 200 2>&1) || fail "alias unlink: $out"
assert_eq "gone alias: 200 rounds, 0 stale" "$out" "alias unlink"
log "fstat after a rename over a provisionally created file, 200 rounds"
out=$("$GONE" alias "$M/al" 200 rename 2>&1) || fail "alias rename: $out"
assert_eq "gone alias: 200 rounds, 0 stale" "$out" "alias rename"

log "O_APPEND descriptor of a new file, committed by a fork's exit, then replaced (seed 90291)"
# It reads the content committed when its file was replaced. Its read view
# was never loaded: the create's commit (provisional, prov.c) named the
# provisional nodeid, so the applied change did not reach the view.
out=$(perl -MPOSIX -MFcntl -e '
    my ($p, $q) = @ARGV;
    sysopen(my $f, $p, O_RDWR | O_CREAT | O_APPEND, 0644) or die "open: $!";
    syswrite($f, "abcd") == 4 or die "write: $!";
    my $pid = fork(); POSIX::_exit(0) if $pid == 0; waitpid($pid, 0);
    open(my $g, ">", $q) or die "other: $!"; print $g "zz"; close($g) or die;
    rename($q, $p) or die "rename: $!";
    sysseek($f, 0, 0); my $n = sysread($f, my $b, 100);
    print defined $n ? "$n $b\n" : "read: $!\n";' "$M/ap" "$M/ap.new") ||
    fail "perl: $out"
assert_eq "4 abcd" "$out" "read through the O_APPEND descriptor after the replace"

zk_stop "$M"
