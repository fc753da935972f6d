#!/usr/bin/env bash
# The metrics file MOUNTPOINT/.zkfs.prom: Prometheus text format (every
# sample line well-formed, every family with # HELP and # TYPE), readable
# with cat, not listed, not writable/removable/creatable (root too), and
# its counters move with real work: znodes, data bytes, last zxid, FUSE
# requests by operation, the fsync duration histogram, ephemerals, backups.
# In a 3-server ensemble it lists every member; a follower held back
# (SIGSTOP) past the DIFF window catches up by snapshot and its bytes
# (raw and zstd) are counted as sent on the leader and installed on it;
# elections are counted and timed (a histogram) after a leader's kill.
# The same over HTTP (metricsProvider.httpPort, bound to 127.0.0.1 by
# default; metricsProvider.httpHost), read with bash's /dev/tcp.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ens_lib.sh"

# value TEXT NAME{LABELS}: the sample's value ("" if absent).
value() { awk -v n="$2" '$1 == n { print $2 }' <<<"$1"; }

# well_formed TEXT: the exposition format's line grammar, and a HELP and
# TYPE for every family that has samples.
well_formed() {
    local bad fam
    bad=$(grep -vE '^# (HELP|TYPE) [a-z_]+ .+$|^[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? -?[0-9]+(\.[0-9]+)?$' <<<"$1" || true)
    [ -z "$bad" ] || fail "malformed metrics lines: $bad"
    for fam in $(grep -oE '^[a-z_]+' <<<"$1" | sort -u); do
        # A histogram's samples are FAMILY_bucket, _sum and _count.
        case $fam in *_bucket | *_sum | *_count)
            grep -q "^# TYPE ${fam%_*} histogram" <<<"$1" && fam=${fam%_*} ;;
        esac
        grep -q "^# TYPE $fam " <<<"$1" || fail "no # TYPE for $fam"
        grep -q "^# HELP $fam " <<<"$1" || fail "no # HELP for $fam"
    done
}

log "a standalone mount: the file reads, is well-formed, and is hidden"
M=$ZK_TMP/m
zk_start "$ZK_TMP/d" "$M"
P=$M/.zkfs.prom
a=$(cat "$P") || fail "cat $P"
well_formed "$a"
assert_eq 1 "$(value "$a" 'zkfs_role{role="standalone"}')" "role"
assert_eq 0 "$(value "$a" 'zkfs_stale')" "stale"
ls -a "$M" | grep -qx '.zkfs.prom' && fail "the metrics file is listed"
assert_eq 444 "$(stat -c %a "$P")" "mode"

log "it cannot be written, truncated, removed, renamed or created over"
assert_fail sh -c "echo x > '$P'"
assert_fail sh -c "echo x >> '$P'"
assert_fail truncate -s 0 "$P"
assert_fail rm -f "$P"
assert_fail mv "$P" "$M/x"
echo y >"$M/y"
assert_fail mv "$M/y" "$P"
assert_fail mkdir "$P"
[ -n "$(cat "$P")" ] || fail "the metrics file is gone after the attempts"

log "counters move with real work"
mkdir "$M/dir"
for i in $(seq 1 20); do echo "value $i" >"$M/dir/f$i"; done
cat "$M"/dir/f* >/dev/null
b=$(cat "$P")
well_formed "$b"
[ "$(value "$b" zkfs_znodes)" -ge $(($(value "$a" zkfs_znodes) + 21)) ] ||
    fail "znodes did not grow by 21: $(value "$a" zkfs_znodes) -> $(value "$b" zkfs_znodes)"
[ "$(value "$b" zkfs_data_bytes)" -gt "$(value "$a" zkfs_data_bytes)" ] || fail "data bytes did not grow"
[ "$(value "$b" zkfs_last_zxid)" -ge $(($(value "$a" zkfs_last_zxid) + 21)) ] || fail "last zxid did not move"
[ "$(value "$b" zkfs_fsyncs_total)" -gt "$(value "$a" zkfs_fsyncs_total)" ] || fail "fsyncs did not move"
[ "$(value "$b" zkfs_transactions_applied_total)" -ge $(($(value "$a" zkfs_transactions_applied_total) + 21)) ] ||
    fail "transactions applied did not move by 21"
# 20 writes of at least 7 data bytes each, plus their paths
[ "$(value "$b" zkfs_transaction_bytes_applied_total)" -ge $(($(value "$a" zkfs_transaction_bytes_applied_total) + 20 * 14)) ] ||
    fail "transaction bytes applied did not grow by 20 writes: $(value "$a" zkfs_transaction_bytes_applied_total) -> $(value "$b" zkfs_transaction_bytes_applied_total)"
[ "$(value "$b" zkfs_znode_changes_total)" -ge $(($(value "$a" zkfs_znode_changes_total) + 21)) ] ||
    fail "znode changes did not move by 21"
# histogram_moved NAME BY: between the scrapes $a and $b, NAME's count
# grew by at least BY; +Inf bucket = count; buckets cumulative; sum > 0.
histogram_moved() {
    local n
    n=$(value "$b" "$1_count")
    [ "$n" -ge $(($(value "$a" "$1_count") + $2)) ] || fail "$1 count did not move by $2"
    assert_eq "$n" "$(value "$b" "$1_bucket{le=\"+Inf\"}")" "$1: +Inf bucket = count"
    grep "^$1_bucket" <<<"$b" | awk '$2 < prev { exit 1 } { prev = $2 }' ||
        fail "$1 buckets not cumulative: $(grep "^$1" <<<"$b")"
    awk -v s="$1_sum" '$1 == s { exit !($2 > 0) }' <<<"$b" || fail "$1 sum is 0"
}
histogram_moved zkfs_commit_latency_seconds 21
# Each new file's close() waited for an echo barrier (docs/filesystem.md).
histogram_moved zkfs_echo_barrier_wait_seconds 20
for op in create write flush mkdir read; do
    before=$(value "$a" "zkfs_fuse_requests_total{op=\"$op\"}")
    after=$(value "$b" "zkfs_fuse_requests_total{op=\"$op\"}")
    [ "${after:-0}" -ge $((${before:-0} + 1)) ] || fail "requests of $op did not move: ${before:-0} -> ${after:-0}"
done
[ "$(value "$b" 'zkfs_fuse_requests_total{op="create"}')" -ge 20 ] || fail "fewer than 20 creates counted"

histogram_moved zkfs_fsync_duration_seconds 1
n=$(value "$b" zkfs_fsync_duration_seconds_count)
# Every group-commit batch is a store commit (so are the epoch's and
# the session's at start, which zkfs_fsyncs_total does not count).
[ $((n - $(value "$a" zkfs_fsync_duration_seconds_count))) -ge \
  $(($(value "$b" zkfs_fsyncs_total) - $(value "$a" zkfs_fsyncs_total))) ] ||
    fail "fewer fsync durations than fsyncs between the scrapes"

log "ephemerals are counted while held; backups by count and bytes"
assert_eq 0 "$(value "$b" zkfs_ephemerals)" "ephemerals before"
mkdir "$M/svc" && setfattr -n user.zkfs.children -v ephemeral "$M/svc"
exec 5>"$M/svc/a" 6>"$M/svc/b"
assert_eq 2 "$(value "$(cat "$P")" zkfs_ephemerals)" "ephemerals held"
exec 5>&- 6>&-
no_ephemerals() { [ "$(value "$(cat "$P")" zkfs_ephemerals)" = 0 ]; }
wait_for -t 10 no_ephemerals || fail "ephemerals not back to 0"
"$ZKFS" snapshot save "$M" "$ZK_TMP/m.zks" 2>/dev/null || fail "snapshot save"
c=$(cat "$P")
assert_eq $(($(value "$b" zkfs_backups_total) + 1)) "$(value "$c" zkfs_backups_total)" "backups"
assert_eq "$(stat -c %s "$ZK_TMP/m.zks")" "$(value "$c" zkfs_backup_bytes_total)" "backup bytes"
assert_eq 0 "$(value "$c" zkfs_backups_failed_total)" "failed backups"

log "errors are counted by operation"
e0=$(value "$(cat "$P")" 'zkfs_fuse_errors_total{op="rmdir"}')
l0=$(value "$(cat "$P")" 'zkfs_fuse_errors_total{op="lookup"}')
assert_fail rmdir "$M/dir"                 # ENOTEMPTY from the daemon
assert_fail cat "$M/no-such-file"          # ENOENT of a lookup
c=$(cat "$P")
[ "$(value "$c" 'zkfs_fuse_errors_total{op="rmdir"}')" -eq $((${e0:-0} + 1)) ] ||
    fail "rmdir errors: ${e0:-0} -> $(value "$c" 'zkfs_fuse_errors_total{op="rmdir"}')"
[ "$(value "$c" 'zkfs_fuse_errors_total{op="lookup"}')" -gt "${l0:-0}" ] || fail "lookup errors did not move"
zk_stop "$M"

log "an ensemble member lists every member, connected, with its lag"
ens_setup 3
ens_start_all
echo v >"$(ens_mnt 1)/f"
ens_wait_synced
L=$(ens_leader)
t=$(cat "$(ens_mnt "$L")/.zkfs.prom")
well_formed "$t"
assert_eq 1 "$(value "$t" 'zkfs_role{role="leader"}')" "leader's role"
assert_eq "$L" "$(value "$t" zkfs_leader_id)" "leader id"
assert_eq 3 "$(grep -c '^zkfs_member_connected{' <<<"$t")" "member rows"
assert_eq 3 "$(grep -cE '^zkfs_member_connected\{.*\} 1$' <<<"$t")" "members connected"
assert_eq 3 "$(grep -c '^zkfs_member_lag{' <<<"$t")" "member lag rows"
printf '%s\n' "$t" | grep -E '^zkfs_(role|leader|member|znodes|sessions)'

log "a change made on another replica is replayed for inotify here"
o=$(ens_follower)
r0=$(value "$(cat "$(ens_mnt "$o")/.zkfs.prom")" 'zkfs_watch_replays_total{result="ok"}')
ls "$(ens_mnt "$o")" >/dev/null          # the kernel knows the root here
echo w >"$(ens_mnt "$L")/watched"
ens_wait_cat "$o" watched w
replays_above() { [ "$(value "$(cat "$1/.zkfs.prom")" 'zkfs_watch_replays_total{result="ok"}')" -gt "$2" ]; }
wait_for -t 10 replays_above "$(ens_mnt "$o")" "$r0" ||
    fail "no replay counted on $o"

log "a snapshot's bytes are counted where it is sent and where installed"
F=$(ens_follower)
snapb() { value "$1" "zkfs_snapshot_bytes_total{direction=\"$2\",form=\"$3\"}"; }
s0=$(cat "$(ens_mnt "$L")/.zkfs.prom")
i0=$(cat "$(ens_mnt "$F")/.zkfs.prom")
well_formed "$s0"
fpid=$(ens_pid "$F")
kill -STOP "$fpid"
ens_wait_unsynced "$(ens_mnt "$L")" "$F"
ens_past_diff "$(ens_mnt "$L")/bulk"
kill -CONT "$fpid"
ens_wait_synced 60
s1=$(cat "$(ens_mnt "$L")/.zkfs.prom")
i1=$(cat "$(ens_mnt "$F")/.zkfs.prom")
[ "$(value "$i1" zkfs_snapshots_installed_total)" -gt "$(value "$i0" zkfs_snapshots_installed_total)" ] ||
    fail "replica $F did not catch up by snapshot"
for form in raw wire; do
    [ "$(snapb "$s1" sent $form)" -gt "$(snapb "$s0" sent $form)" ] ||
        fail "sent $form bytes did not move: $(grep snapshot_bytes <<<"$s1")"
    [ "$(snapb "$i1" installed $form)" -gt "$(snapb "$i0" installed $form)" ] ||
        fail "installed $form bytes did not move: $(grep snapshot_bytes <<<"$i1")"
    # Nothing else streams: the leader sent at least what $F installed.
    [ "$(snapb "$s1" sent $form)" -ge "$(snapb "$i1" installed $form)" ] ||
        fail "more $form bytes installed on $F than the leader sent"
done
[ "$(snapb "$i1" installed raw)" -gt "$(snapb "$i1" installed wire)" ] ||
    fail "zstd did not shrink the snapshot: $(grep snapshot_bytes <<<"$i1")"
grep '^zkfs_snapshot_bytes' <<<"$s1"

log "an election is counted and timed on the survivors"
e0=$(value "$i1" zkfs_elections_total)
[ "$e0" -ge 1 ] || fail "no election counted at start on $F"
# The first election (from start to an established leader) is timed.
c0=$(value "$i1" zkfs_election_duration_seconds_count)
[ "$c0" -ge 1 ] || fail "no election timed at start on $F"
[ "$(value "$t" 'zkfs_syncs_total{mode="diff"}')" -ge 1 ] || fail "the leader counted no DIFF sync: $(grep syncs <<<"$t")"
ens_kill9 "$L"
ens_wait_leader
e1=$(value "$(cat "$(ens_mnt "$F")/.zkfs.prom")" zkfs_elections_total)
[ "$e1" -gt "$e0" ] || fail "elections on $F did not move: $e0 -> $e1"
a=$i1
timed() {
    b=$(cat "$(ens_mnt "$F")/.zkfs.prom")
    [ "$(value "$b" zkfs_election_duration_seconds_count)" -gt "$c0" ]
}
wait_for -t 20 timed || fail "the election after the kill was not timed on $F"
histogram_moved zkfs_election_duration_seconds 1
grep '^zkfs_election_duration' <<<"$b"

# http_get PORT PATH: the whole HTTP answer.
http_get() {
    local r
    exec 7<>"/dev/tcp/127.0.0.1/$1" || return 1
    printf 'GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n' "$2" >&7
    r=$(timeout 10 cat <&7)
    exec 7>&-
    printf '%s' "$r" | tr -d '\r'
}
body() { sed '1,/^$/d' <<<"$1"; }

log "HTTP: metricsProvider.httpPort on 127.0.0.1, counters move"
port=
for _ in $(seq 1 50); do
    p=$((20000 + RANDOM % 40000))
    ss -Htln "sport = :$p" | grep -q . || { port=$p; break; }
done
[ -n "$port" ] || fail "no free port"
printf 'dataDir=%s\nmetricsProvider.httpPort=%s\n' "$ZK_TMP/h" "$port" >"$ZK_TMP/h.cfg"
H=$ZK_TMP/mh
zk_start "$ZK_TMP/h" "$H" -c "$ZK_TMP/h.cfg"
ss -Htln "sport = :$port" | grep -q '127.0.0.1:' || fail "not listening on 127.0.0.1:$port: $(ss -Htln "sport = :$port")"
r=$(http_get "$port" /metrics) || fail "no HTTP answer"
assert_match '^HTTP/1.0 200 OK$' "$(head -n 1 <<<"$r")" "status line"
assert_match '^Content-Type: text/plain; version=0.0.4' "$(grep '^Content-Type' <<<"$r")" "content type"
h1=$(body "$r")
well_formed "$h1"
for i in $(seq 1 10); do echo "$i" >"$H/g$i"; done
h2=$(body "$(http_get "$port" /metrics)")
[ "$(value "$h2" zkfs_znodes)" -ge $(($(value "$h1" zkfs_znodes) + 10)) ] || fail "znodes over HTTP did not grow"
[ "$(value "$h2" 'zkfs_fuse_requests_total{op="create"}')" -ge 10 ] || fail "creates over HTTP not counted"
assert_eq "$(value "$h2" zkfs_znodes)" "$(value "$(cat "$H/.zkfs.prom")" zkfs_znodes)" "file and HTTP agree"
assert_match '^HTTP/1.0 404 ' "$(http_get "$port" /other | head -n 1)" "another path"
zk_stop "$H"
ss -Htln "sport = :$port" | grep -q . && fail "port $port still open after umount"

log "a bad metricsProvider.httpHost is a config error"
printf 'dataDir=%s\nmetricsProvider.httpPort=%s\nmetricsProvider.httpHost=localhost\n' "$ZK_TMP/h" "$port" >"$ZK_TMP/bad.cfg"
assert_rc 2 "$ZKFS" mount -c "$ZK_TMP/bad.cfg" "$H"
assert_match 'bad.cfg:3: metricsProvider.httpHost' "$ZK_ERR" "error line"
