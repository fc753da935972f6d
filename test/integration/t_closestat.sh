#!/usr/bin/env bash
# A stat right after close() shows what the close committed, on the
# writer's own mount, also where the daemon sends the kernel no
# invalidation for it (fs/file.c, local_inval_needed: the writer's own
# WRITEs and O_TRUNC marked size and times stale in the kernel, and the
# daemon gives a file's attributes no cache time while it has a writer).
# Each round caches the file's attributes first (a stat with the day-long
# timeout), then writes in one of several ways, then compares size, mtime
# (with the committed user.zk.mtime, which the kernel never caches) and
# mode right after the close. Also: a truncate-only open, a stat and an
# fstat from another descriptor between the write and the close, two
# writers, an O_APPEND writer beside a plain one, and a non-root writer
# of a setuid file (its commit clears the bit: always invalidated).
. "$(dirname "$0")/lib.sh"

D=$ZK_TMP/data
M=$ZK_TMP/mnt
chmod 755 "$ZK_TMP"
zk_start "$D" "$M"
chmod 755 "$M"

# check FILE SIZE WHAT: size, mtime (ms) and the committed mtime agree.
check() {
    local got zk
    got=$(stat -c '%s %.3Y' "$1")
    zk=$(xattr "$1" user.zk.mtime)
    assert_eq "$2" "${got%% *}" "size right after close: $3"
    local t=${got#* }
    assert_eq "$zk" "${t/./}" "mtime right after close is the committed one: $3"
}

# The perl below: sysopen with the flags given, writes, optional stat by
# path and fstat of a second descriptor between write and close.
w() {   # w FILE MODE(trunc|plain|append) BYTES [between]
    perl -e 'use Fcntl; my ($f, $m, $n, $b) = @ARGV;
        my $fl = O_WRONLY | ($m eq "trunc" ? O_TRUNC : 0) | ($m eq "append" ? O_APPEND : 0);
        sysopen(my $fh, $f, $fl) or die "open: $!\n";
        open(my $r, "<", $f) or die "open r: $!\n" if $b;
        syswrite($fh, "x" x $n) == $n or die "write: $!\n" if $n;
        if ($b) { my @a = stat($f); my @c = stat($r); close($r); }
        close($fh) or die "close: $!\n";' "$@"
}

echo seed >"$M/f"
for r in $(seq 1 40); do
    n=$(( (r * 37) % 300 + 1 ))
    stat "$M/f" >/dev/null                  # attributes cached for a day
    case $((r % 4)) in
    0) w "$M/f" trunc "$n"; check "$M/f" "$n" "round $r, O_TRUNC + write" ;;
    1) w "$M/f" trunc "$n" between; check "$M/f" "$n" "round $r, O_TRUNC + write, stats between" ;;
    2) w "$M/f" trunc 0; check "$M/f" 0 "round $r, O_TRUNC alone" ;;
    3) old=$(stat -c %s "$M/f"); big=$(( old > n ? old : n ))
       w "$M/f" plain "$n"; check "$M/f" "$big" "round $r, overwrite in place" ;;
    esac
    sleep 0.002                             # let the times differ
done
assert_eq 644 "$(stat -c %a "$M/f")" "mode unchanged by the data commits"

log "two writers, and an O_APPEND writer beside a plain one"
echo 12345 >"$M/g"
stat "$M/g" >/dev/null
# A loads 12345\n at its open and writes ab over it; B truncates, writes
# xyz and closes first; then A's close commits its whole buffer.
out=$(perl -e 'use Fcntl; my $f = $ARGV[0];
    sysopen(my $a, $f, O_WRONLY) or die "$!\n";
    sysopen(my $b, $f, O_WRONLY | O_TRUNC) or die "$!\n";
    syswrite($a, "ab"); syswrite($b, "xyz");
    close($b) or die; my @s1 = stat($f);
    close($a) or die; my @s2 = stat($f);
    print "$s1[7] $s2[7]\n"' "$M/g")
assert_eq "3 6" "$out" "sizes right after each of two writers' close"
check "$M/g" 6 "two writers"
exec 8>>"$M/g"
w "$M/g" trunc 4
check "$M/g" 4 "O_TRUNC writer beside an open O_APPEND one"
printf yz >&8
exec 8>&-
check "$M/g" 6 "the append's close"

log "a non-root writer of a setuid file: the bit goes, and stat shows it"
echo s >"$M/su"
chmod 4777 "$M/su"
stat "$M/su" >/dev/null
setpriv --reuid=1000 --regid=1000 --clear-groups perl -e 'open(my $f, ">>", $ARGV[0]) or die; print $f "x"; close($f) or die' "$M/su"
assert_eq 777 "$(stat -c %a "$M/su")" "setuid cleared, seen right after close"

skipped=$(zk_metric "$M" zkfs_echo_local_skipped_total)
[ "${skipped:-0}" -gt 0 ] || fail "no data commit was answered without an invalidation (zkfs_echo_local_skipped_total ${skipped:-missing})"
log "answered without an invalidation: $skipped commits"
zk_stop "$M"
