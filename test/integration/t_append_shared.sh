#!/usr/bin/env bash
# Processes that share one O_APPEND open file description (forked after
# the open, as `cmd >> log &` jobs or `xargs -P` children do) and close
# it at the same moment: each close is a FLUSH of the same open file, and
# each must commit only what is not committed yet. Until 2026-12-05 a
# FLUSH that came while another one's commit was under way appended the
# whole buffer again (8 bytes written, 64 committed), and the next commit
# cut more than the buffer held: the daemon's heap was corrupted and the
# mount died (fs/file.c, run_waits; found by a code review, reproduced).
# Rounds of 8 writers (flush), of 8 writers that fsync before the close,
# and of writers that write again while the others close.
. "$(dirname "$0")/lib.sh"

D=$ZK_TMP/data
M=$ZK_TMP/mnt
zk_start "$D" "$M"
PID=$ZK_PID

# The perl below: opens FILE O_WRONLY|O_APPEND once, forks N children
# that each write their letter (MODE more: a second letter after the
# release too), say so, and wait until the parent closes the "go" pipe:
# then all close (MODE fsync: fsync first) at once.
share() {   # share FILE N MODE(flush|fsync|more)
    perl -e 'use Fcntl; use IO::Handle;
        my ($f, $n, $m) = @ARGV;
        sysopen(my $fh, $f, O_WRONLY | O_APPEND) or die "open: $!\n";
        pipe(my $gr, my $gw) or die; pipe(my $rr, my $rw) or die;
        my @kids;
        for my $i (0 .. $n - 1) {
            my $pid = fork() // die "fork: $!\n";
            if (!$pid) {
                close $gw; close $rr;
                my $c = chr(ord("a") + $i);
                syswrite($fh, $c) == 1 or die "write: $!\n";
                syswrite($rw, "r") == 1 or die; close $rw;
                my $b; sysread($gr, $b, 1);         # EOF: go
                syswrite($fh, uc $c) == 1 or die "write 2: $!\n" if $m eq "more";
                if ($m eq "fsync") { $fh->sync or die "fsync: $!\n"; }
                close($fh) or die "close: $!\n";
                exit 0;
            }
            push @kids, $pid;
        }
        close $gr; close $rw;
        my ($b, $got) = ("", 0);
        $got++ while $got < $n && sysread($rr, $b, 1) == 1;
        close $gw;                                  # all go at once
        my $bad = 0;
        for (@kids) { waitpid($_, 0); $bad++ if $? }
        close($fh) or die "close: $!\n";
        exit($bad ? 1 : 0);' "$1" "$2" "$3"
}

# sorted LETTERS: the letters of a string in order.
sorted() { fold -w1 <<<"$1" | sort | tr -d '\n'; }

for mode in flush fsync more; do
    for r in 1 2 3 4 5 6; do
        f=$M/log.$mode.$r
        : >"$f"
        share "$f" 8 "$mode" || fail "$mode round $r: a writer failed"
        kill -0 "$PID" 2>/dev/null || fail "$mode round $r: the daemon died"
        got=$(cat "$f") || fail "$mode round $r: cannot read $f"
        want=abcdefgh
        [ "$mode" = more ] && want=ABCDEFGHabcdefgh
        assert_eq "$want" "$(sorted "$got")" \
            "$mode round $r: every byte appended exactly once ($got)"
    done
done
log "48 rounds of 8 processes sharing one O_APPEND file: each byte once"

# The daemon is alive and the mount answers.
echo ok >"$M/after" && assert_eq ok "$(cat "$M/after")" "the mount still works"
zk_stop "$M"
