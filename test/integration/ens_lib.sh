# shellcheck shell=bash
# ens_lib.sh — helpers for the ensemble integration tests (t_ens_*.sh):
# N replicas of one ensemble on loopback, each a real `zkfs mount -f -c`
# process with its own data directory and mountpoint under $ZK_TMP.
# Source lib.sh first; its EXIT trap stops everything started here (every
# daemon is started through the same pid and mount bookkeeping).
#
#   ens_setup 3 [CFG-LINE...]   writes $ZK_TMP/secret and z1..z3.cfg
#   ens_start_all               starts every replica, waits for a leader
#   ens_mnt I                   prints replica I's mountpoint
#   ens_leader                  prints the leader's id (by replica status)
#   ens_kill9 I / ens_stop I / ens_start I
#   ens_wait_synced             every live replica at the same zxid
#   ens_tree I                  a canonical dump of replica I's tree
#   ens_past_diff DIR           commits more than the DIFF window in DIR
#   ens_wait_unsynced MNT ID    waits until the leader (mounted at MNT) no
#                               longer counts replica ID as synced
#   ens_net_setup N [CFG-LINE...] / ens_net_start_all / ens_net_cut I /
#   ens_net_heal I / ens_net_cleanup   replicas in network namespaces
#
# Ports: a random base in 20000..59999 per test, each port checked free.

ENS_N=0
ENS_BASE=0
ENS_NET=0                # 1 after ens_net_setup
declare -A ENS_UP=()     # id -> 1 while running

# ens_mnt I / ens_data I / ens_cfg I
ens_mnt() { printf '%s/m%s' "$ZK_TMP" "$1"; }
ens_data() { printf '%s/d%s' "$ZK_TMP" "$1"; }
ens_cfg() { printf '%s/z%s.cfg' "$ZK_TMP" "$1"; }
ens_port() { printf '%d' $((ENS_BASE + $1)); }

ens__port_free() {
    ! ss -Htan "sport = :$1" 2>/dev/null | grep -q .
}

# ens_setup N [LINE...]: N servers (ids 1..N, voters unless a LINE
# redefines the role: pass "observer=4" to make server 4 an observer), the
# given extra config lines (tickTime=..., sessionTimeout=...) in every
# file. A shared 32-byte secret in $ZK_TMP/secret.
# ens__observers ARGS...: the ids given as observer=J among ARGS, " 4 5 ".
ens__observers() {
    local o=" " line
    for line in "$@"; do
        case $line in observer=*) o+="${line#observer=} " ;; esac
    done
    echo "$o"
}

# ens__cfg_tail OBSERVERS ADDR-FN N ARGS...: the config lines after
# dataDir and secretFile: ARGS but observer=J, then server.1..N at
# $(ADDR-FN J) (host:port; ":observer" for those in OBSERVERS).
ens__cfg_tail() {
    local observers=$1 addrfn=$2 n=$3 line j
    shift 3
    for line in "$@"; do
        case $line in observer=*) ;; *) echo "$line" ;; esac
    done
    for j in $(seq 1 "$n"); do
        if [[ $observers == *" $j "* ]]; then
            echo "server.$j=$($addrfn "$j"):observer"
        else
            echo "server.$j=$($addrfn "$j")"
        fi
    done
}
ens__addr_lo() { echo "127.0.0.1:$(ens_port "$1")"; }
ens__addr_net() { echo "10.200.0.$1:2888"; }

ens_setup() {
    local n=$1 i tries=0 observers
    shift
    ENS_N=$n
    observers=$(ens__observers "$@")
    while :; do
        ENS_BASE=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
        local ok=1
        for i in $(seq 1 "$n"); do
            ens__port_free $((ENS_BASE + i)) || ok=0
        done
        [ "$ok" = 1 ] && break
        tries=$((tries + 1))
        [ "$tries" -lt 50 ] || fail "no free ports found"
    done
    head -c 32 /dev/urandom >"$ZK_TMP/secret"
    chmod 600 "$ZK_TMP/secret"
    for i in $(seq 1 "$n"); do
        {
            echo "# replica $i of a test ensemble"
            echo "dataDir=$(ens_data "$i")"
            echo "secretFile=$ZK_TMP/secret"
            ens__cfg_tail "$observers" ens__addr_lo "$n" "$@"
        } >"$(ens_cfg "$i")"
    done
    log "ensemble of $n on 127.0.0.1:$((ENS_BASE + 1))..$((ENS_BASE + n))"
}

# ens_launch I [MOUNT-ARGS...]: starts replica I without waiting.
ens_launch() {
    local i=$1 mnt logf
    shift
    mnt=$(ens_mnt "$i")
    mkdir -p "$mnt"
    logf=$ZK_TMP/zkfs.r$i.log
    echo "=== start $(date +%T.%N)" >>"$logf"
    # In its network namespace after ens_net_setup (nsenter execs zkfs,
    # so $! is the daemon's pid).
    local pre=()
    [ "$ENS_NET" = 1 ] && pre=(nsenter --net="/run/netns/${ENS_NSP}r$i")
    "${pre[@]}" "$ZKFS" mount -f -c "$(ens_cfg "$i")" --id "$i" "$@" "$mnt" \
        >>"$logf" 2>&1 &
    ZK_PID=$!
    ZK_PIDS+=("$ZK_PID")
    ZK_MOUNTS+=("$mnt")
    ZK_PID_OF[$mnt]=$ZK_PID
    ENS_UP[$i]=1
    log "started replica $i pid $ZK_PID on $mnt${pre[*]:+ (${pre[*]})} (log $logf)"
}

ens__wait_mounted() {
    local i=$1 mnt pid
    mnt=$(ens_mnt "$i")
    pid=${ZK_PID_OF[$mnt]}
    if ! wait_for -t 30 zk__up "$mnt" "$pid" || zk_pid_gone "$pid"; then
        tail -n 30 "$ZK_TMP/zkfs.r$i.log" >&2
        fail "replica $i did not mount $mnt"
    fi
}

# ens_start I [MOUNT-ARGS...]: starts replica I and waits for its mount.
ens_start() {
    ens_launch "$@"
    ens__wait_mounted "$1"
}

# ens_start_all: starts replicas 1..N together, waits for every mount and
# for an established leader that every replica follows.
ens_start_all() {
    local i
    for i in $(seq 1 "$ENS_N"); do ens_launch "$i"; done
    for i in $(seq 1 "$ENS_N"); do ens__wait_mounted "$i"; done
    ens_wait_leader
}

# ens_field I KEY: one value from replica I's `zkfs status --json`.
ens_field() {
    "$ZKFS" status --json "$(ens_mnt "$1")" 2>/dev/null |
        sed -n "s/.*\"$2\":\"\{0,1\}\([^,\"}]*\).*/\1/p"
}

# ens_live: the ids of the replicas running now.
ens_live() {
    local i
    for i in $(seq 1 "$ENS_N"); do
        [ "${ENS_UP[$i]:-}" = 1 ] && printf '%s ' "$i"
    done
}

# Every live replica follows or leads the same leader and is not stale.
ens__agreed() {
    local i l first=
    for i in $(ens_live); do
        [ "$(ens_field "$i" stale)" = false ] || return 1
        l=$(ens_field "$i" leader_id)
        [ -n "$l" ] && [ "$l" != 0 ] || return 1
        [ -z "$first" ] && first=$l
        [ "$l" = "$first" ] || return 1
    done
    [ -n "$first" ] && [ "${ENS_UP[$first]:-}" = 1 ] &&
        [ "$(ens_field "$first" role)" = leader ]
}

# ens_wait_leader [SECONDS]: waits until the live replicas agree on an
# established leader.
ens_wait_leader() {
    wait_for -t "${1:-30}" ens__agreed ||
        fail "no agreed leader among replicas $(ens_live)"
}

# ens_leader: the id of the current leader (after ens_wait_leader).
ens_leader() {
    local i
    for i in $(ens_live); do
        if [ "$(ens_field "$i" role)" = leader ]; then
            echo "$i"
            return 0
        fi
    done
    return 1
}

# ens_follower: the id of some live follower.
ens_follower() {
    local i
    for i in $(ens_live); do
        if [ "$(ens_field "$i" role)" = follower ]; then
            echo "$i"
            return 0
        fi
    done
    return 1
}

ens__same_zxid() {
    local i z first=
    for i in $(ens_live); do
        z=$(ens_field "$i" zxid)
        [ -n "$z" ] || return 1
        [ -z "$first" ] && first=$z
        [ "$z" = "$first" ] || return 1
    done
}

# ens_wait_synced [SECONDS]: every live replica has applied the same zxid.
ens_wait_synced() {
    wait_for -t "${1:-30}" ens__same_zxid ||
        fail "replicas $(ens_live) did not reach the same zxid"
}

# ens_kill9 I: kill -9 of replica I, its dead mount cleared.
ens_kill9() {
    zk_kill9 "$(ens_mnt "$1")"
    ENS_UP[$1]=0
}

# ens_stop I: `zkfs umount` of replica I; its daemon must exit 0.
ens_stop() {
    zk_stop "$(ens_mnt "$1")"
    ENS_UP[$1]=0
}

# ens_tree I: every znode of replica I with its kind, mode, size and
# content hash, sorted (what "all trees are identical" compares).
ens_tree() {
    local m
    m=$(ens_mnt "$1")
    (
        cd "$m" || exit 1
        find . -mindepth 1 -printf '%y %m %s %p\n' | sort
        # One sha256sum for all files (one per file is slow under load).
        find . -type f -print0 | sort -z | xargs -0 -r sha256sum |
            cut -c1-16,65-
    )
}

# ens_trees_identical: every live replica's tree equals the first one's.
ens_trees_identical() {
    local i first= t
    for i in $(ens_live); do
        t=$(ens_tree "$i")
        if [ -z "$first" ]; then
            first=$i
            printf '%s\n' "$t" >"$ZK_TMP/tree.$i"
            continue
        fi
        printf '%s\n' "$t" >"$ZK_TMP/tree.$i"
        if ! cmp -s "$ZK_TMP/tree.$first" "$ZK_TMP/tree.$i"; then
            # (|| true: under pipefail the diff's status would end the
            # test here, before fail says what differed)
            diff "$ZK_TMP/tree.$first" "$ZK_TMP/tree.$i" | head -20 >&2 || true
            fail "tree of replica $i differs from replica $first"
        fi
    done
    [ -n "$first" ] || fail "no live replica to compare"
}

# ens_tree_size I: how many znodes the last ens_trees_identical listed.
ens_tree_size() { grep -cE '^[a-z] ' "$ZK_TMP/tree.$1"; }

# --- small helpers for the t_ens_* tests --------------------------------

# ens_pid I: the daemon pid of replica I.
ens_pid() { printf '%s' "${ZK_PID_OF[$(ens_mnt "$1")]:-}"; }

# ens_cat_is I REL WANT: replica I's file REL holds WANT (as $(cat)).
ens_cat_is() { [ "$(cat "$(ens_mnt "$1")/$2" 2>/dev/null)" = "$3" ]; }

# ens_wait_cat I REL WANT [SECONDS]: waits until ens_cat_is, else fails.
ens_wait_cat() {
    wait_for -t "${4:-20}" ens_cat_is "$1" "$2" "$3" ||
        fail "replica $1: $2 is [$(cat "$(ens_mnt "$1")/$2" 2>&1)], expected [$3]"
}

# ens_wait_exists I REL / ens_wait_gone I REL [SECONDS]
ens_wait_exists() {
    wait_for -t "${3:-20}" test -e "$(ens_mnt "$1")/$2" ||
        fail "replica $1: $2 did not appear"
}
# ens_mkdir_seen REL: mkdir REL through mount 1, then waits until mounts 2
# and 3 show it.
ens_mkdir_seen() {
    mkdir "$(ens_mnt 1)/$1" || fail "mkdir $1 on mount 1"
    ens_wait_exists 2 "$1"
    ens_wait_exists 3 "$1"
}
ens_wait_gone() {
    wait_for -t "${3:-20}" not test -e "$(ens_mnt "$1")/$2" ||
        fail "replica $1: $2 did not go away"
}

# --- writers under faults (t_ens_kill9, t_ens_restart) -------------------
#
# Each writer creates w/wI-[TAG-]N on replica I's mount holding
# "NAME:$ENS_TOKEN" (dd reports a failed close(), the commit) and appends
# "NAME START END" to $ZK_TMP/acks.I after success, "NAME START END ERROR"
# to errs.I after a failure (then backs off 100 ms). It stops when the file
# STOP exists, after 3000 writes or after 150 s. A dead or unmounted mount
# fails fast (ENOTCONN; ENOENT once unmounted, as w/ exists only in the
# tree), so nothing is ever written to the bare mountpoint directory.

ENS_TOKEN=$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')

# ens_writer I TAG STOP
ens_writer() {
    local i=$1 tag=${2:+$2-} stop=$3 m n=0 name t0 err end=$((SECONDS + 150))
    m=$(ens_mnt "$i")
    while [ ! -e "$stop" ] && [ "$n" -lt 3000 ] && [ "$SECONDS" -lt "$end" ]; do
        n=$((n + 1))
        name=w$i-$tag$n
        t0=$EPOCHREALTIME
        if err=$(printf '%s:%s\n' "$name" "$ENS_TOKEN" |
            dd of="$m/w/$name" status=none 2>&1); then
            echo "$name $t0 $EPOCHREALTIME" >>"$ZK_TMP/acks.$i"
        else
            echo "$name $t0 $EPOCHREALTIME ${err//$'\n'/ }" >>"$ZK_TMP/errs.$i"
            sleep 0.1
        fi
        sleep 0.05
    done
}

nlines() { cat "$@" 2>/dev/null | wc -l; }
total_acks() { nlines "$ZK_TMP"/acks.*; }
acks_above() { [ "$(total_acks)" -ge "$1" ]; }

# ens_errors_summary: the failed writes, counted by error.
ens_errors_summary() {
    awk '{ $1 = $2 = $3 = ""; sub(/^ +/, ""); sub(/^dd: [^:]*: /, ""); print }' \
        "$ZK_TMP"/errs.* | sort | uniq -c | sed 's/^/#   /'
}

# ens_check_acked LABEL: every acknowledged file on every live replica,
# with its content; a failed write left the file absent, empty or complete.
ens_check_acked() {
    local i
    cat "$ZK_TMP"/acks.* >"$ZK_TMP/acked"
    cat "$ZK_TMP"/errs.* >"$ZK_TMP/failed"
    [ -s "$ZK_TMP/acked" ] || fail "$1: no write was acknowledged"
    for i in $(ens_live); do
        awk -v dir="$(ens_mnt "$i")/w" -v tok="$ENS_TOKEN" -v rep="$i" -v what="$1" '
            FNR == 1 { nfile++ }
            {
                f = dir "/" $1; line = ""; rc = (getline line < f); close(f)
                want = $1 ":" tok
                if (nfile == 1) {
                    n++
                    if (rc < 0) { print "replica " rep ": acknowledged " $1 " is missing"; bad++ }
                    else if (line != want) { print "replica " rep ": acknowledged " $1 " holds [" line "]"; bad++ }
                } else if (rc > 0 && line != want) {
                    print "replica " rep ": failed write " $1 " left [" line "]"; bad++
                }
            }
            END { printf "# %s: replica %s: %d acknowledged files checked\n", what, rep, n; exit bad > 0 }
        ' "$ZK_TMP/acked" "$ZK_TMP/failed" || fail "$1: replica $i lost or corrupted writes"
    done
}

# A replica whose writes hang (a daemon stuck in the kernel: a FUSE
# request that is never answered) must fail the test with a diagnosis, not
# hang it. ens_hang_diag I: the daemon's threads (state, wchan, kernel
# stack, gdb backtrace), the processes stuck on our mounts; then its FUSE
# connection is aborted (it is this test's mount, still mounted), so that
# the stuck processes can end.
ens_hang_diag() {
    local i=$1 p t mnt dev
    set +e # diagnostics only; the caller fails right after
    mnt=$(ens_mnt "$i")
    p=${ZK_PID_OF[$mnt]:-}
    echo "HANG on replica $i ($mnt, pid $p)"
    for t in /proc/"$p"/task/*; do
        echo "  thread ${t##*/}: state $(awk '{ print $3 }' "$t/stat" 2>/dev/null) wchan $(cat "$t/wchan" 2>/dev/null)"
        sed 's/^/      /' "$t/stack" 2>/dev/null | head -12
    done
    if command -v gdb >/dev/null && [ -n "$p" ]; then
        timeout -k 2 20 gdb -p "$p" -batch -ex 'thread apply all bt 25' 2>&1 |
            grep -E '^(Thread|#)' | sed 's/^/    gdb: /' | head -80
    fi
    ps -eo pid,stat,wchan:28,args | awk -v d="$ZK_TMP" 'index($0, d) && $2 ~ /D/' |
        sed 's/^/  D: /'
    dev=$(awk -v m="$mnt" '$5 == m { print $3 }' /proc/self/mountinfo)
    if [ -n "$dev" ] && [ -w "/sys/fs/fuse/connections/${dev#*:}/abort" ]; then
        echo "  aborting FUSE connection ${dev#*:} of $mnt"
        echo 1 >"/sys/fs/fuse/connections/${dev#*:}/abort"
    fi
}

# every_writer_progressed: each live replica's writer has 3 more acks
# than recorded in $ZK_TMP/mark.I.
every_writer_progressed() {
    local i
    for i in $(ens_live); do
        [ "$(nlines "$ZK_TMP/acks.$i")" -ge $(($(cat "$ZK_TMP/mark.$i") + 3)) ] || return 1
    done
}

# ens_check_progress WHAT: waits (20 s at most) until every live replica
# took writes from its own writer; else diagnoses the stuck ones and fails.
ens_check_progress() {
    local i stuck=
    for i in 1 2 3; do nlines "$ZK_TMP/acks.$i" >"$ZK_TMP/mark.$i"; done
    wait_for -t 20 every_writer_progressed 2>/dev/null && return 0
    for i in $(ens_live); do
        if [ "$(nlines "$ZK_TMP/acks.$i")" -lt $(($(cat "$ZK_TMP/mark.$i") + 3)) ]; then
            stuck+=" $i"
            ens_hang_diag "$i" >&2
        fi
    done
    fail "$1: writes on replica(s)$stuck made no progress in 20 s (see HANG above)"
}

# threads_gone PID: every thread of PID has exited (a zombie leader with a
# thread still in the kernel is not gone).
threads_gone() {
    local t st
    for t in /proc/"$1"/task/*; do
        st=$(awk '{ print $3 }' "$t/stat" 2>/dev/null) || continue
        [ -z "$st" ] || [ "$st" = Z ] || [ "$st" = X ] || return 1
    done
}

# ens_reap_killed I PID: after a kill -9 of replica I's daemon PID, every
# thread must be gone within 10 s (else: diagnosis and failure — `wait PID`
# never returns for one with a thread stuck in the kernel); then it is
# waited for and its dead mount cleared.
ens_reap_killed() {
    local i=$1 p=$2 stuck t
    if ! wait_for -t 10 threads_gone "$p"; then
        stuck=$(for t in /proc/"$p"/task/*; do printf '%s:%s ' "${t##*/}" "$(cat "$t/wchan" 2>/dev/null)"; done)
        ens_hang_diag "$i" >&2
        fail "replica $i (pid $p) did not die after kill -9; threads (id:wchan): ${stuck}- typically a daemon thread waiting for a directory lock held by a FUSE request of the mount that the killed loop will never answer (see HANG above)"
    fi
    wait "$p" 2>/dev/null || true
    fusermount3 -u -z "$(ens_mnt "$i")" 2>/dev/null || true
    ENS_UP[$i]=0
}

# ens_past_diff DIR: commits well more transactions than the leader keeps
# for DIFF (ZK_ZAB_LOG_KEEP = 1024; some reach a stopped follower's socket
# before the leader gives up on it) in DIR (made here, on a leader's
# mount), so a follower that misses them catches up by snapshot.
# ens_wait_unsynced MNT ID: waits (20 s at most) until the leader mounted
# at MNT no longer counts replica ID, held back by the caller (SIGSTOP or
# a cut network), as synced. Entries sent to it before that wait in its
# socket and reach it when it is let back, so a test that needs it to
# catch up by snapshot writes past the DIFF window only after this (with
# fast writes, most of ens_past_diff's otherwise went out before and it
# caught up by DIFF).
ens_wait_unsynced() {
    local prom=$1/.zkfs.prom id=$2
    ens__unsynced() {
        ! grep -q "^zkfs_member_connected{id=\"$id\",.*state=\"synced\"}" "$prom"
    }
    wait_for -t 20 ens__unsynced ||
        fail "the leader still counts replica $id as synced"
}

ens_past_diff() {
    local bench=${ZKFS%/zkfs}/bench/fsbench
    [ -x "$bench" ] || fail "no $bench (make all)"
    mkdir "$1" || fail "mkdir $1"
    "$bench" --dir "$1" --workload set --files 10 --ops 2500 |
        tee -a "$ZK_TMP/bench.log" | grep -q "errors=0" ||
        fail "bulk writes in $1 failed: $(cat "$ZK_TMP/bench.log")"
}

# --- replicas in network namespaces (t_ens_partition, t_ens_linear) -----
#
# Replica I runs in netns ${ENS_NSP}rI at 10.200.0.I, all joined by veth
# pairs to a bridge in a hub netns; ens_net_cut I (`ip -n HUB link set vI
# down`) cuts replica I off, ens_net_heal I heals. Daemons are started
# with `nsenter --net=...` (only the network namespace changes: `ip netns
# exec` would also give them a new mount namespace, and their FUSE mounts
# would be invisible here). The caller's EXIT trap must run
# ens_net_cleanup before zk__cleanup:
#   trap 'rc=$?; ens_net_cleanup; (exit $rc); zk__cleanup' EXIT

ENS_NSP=zkp$$
ENS_NETS=()

ens_net_cleanup() {
    local n
    set +e
    for n in "${ENS_NETS[@]}"; do
        ip netns del "$n" 2>/dev/null
    done
    ip link del "${ENS_NSP}a" 2>/dev/null
    return 0
}

# ens_net_setup N [CFG-LINE...]: the namespaces, the bridge, a secret and
# one config per replica (servers at 10.200.0.I:2888, the given lines;
# observer=J makes server J an observer, as for ens_setup).
ens_net_setup() {
    local n=$1 i hub=${ENS_NSP}h observers
    shift
    observers=$(ens__observers "$@")
    command -v ip >/dev/null || fail "ip (iproute2) is needed (scripts/deps.sh --tests)"
    command -v nsenter >/dev/null || fail "nsenter (util-linux) is needed (scripts/deps.sh --tests)"
    ip netns add "$hub"
    ENS_NETS+=("$hub")
    ip -n "$hub" link add br0 type bridge
    ip -n "$hub" link set br0 up
    for i in $(seq 1 "$n"); do
        ip netns add "${ENS_NSP}r$i"
        ENS_NETS+=("${ENS_NSP}r$i")
        ip link add "${ENS_NSP}a" type veth peer name "${ENS_NSP}b"
        ip link set "${ENS_NSP}a" netns "$hub"
        ip link set "${ENS_NSP}b" netns "${ENS_NSP}r$i"
        ip -n "$hub" link set "${ENS_NSP}a" name "v$i"
        ip -n "$hub" link set "v$i" master br0
        ip -n "$hub" link set "v$i" up
        ip -n "${ENS_NSP}r$i" link set "${ENS_NSP}b" name eth0
        ip -n "${ENS_NSP}r$i" addr add "10.200.0.$i/24" dev eth0
        ip -n "${ENS_NSP}r$i" link set eth0 up
        ip -n "${ENS_NSP}r$i" link set lo up
    done
    log "netns $hub (bridge) and ${ENS_NSP}r1..$n at 10.200.0.1..$n"
    ENS_N=$n
    ENS_NET=1
    head -c 32 /dev/urandom >"$ZK_TMP/secret"
    chmod 600 "$ZK_TMP/secret"
    for i in $(seq 1 "$n"); do
        {
            echo "dataDir=$(ens_data "$i")"
            echo "secretFile=$ZK_TMP/secret"
            ens__cfg_tail "$observers" ens__addr_net "$n" "$@"
        } >"$(ens_cfg "$i")"
    done
}

ens_net_cut() { ip -n "${ENS_NSP}h" link set "v$1" down; }
ens_net_heal() { ip -n "${ENS_NSP}h" link set "v$1" up; }

# ens_net_start_all: ens_start_all for replicas set up by ens_net_setup,
# checking they run in their own network namespace and in ours for mounts.
ens_net_start_all() {
    ens_start_all
    [ "$(readlink "/proc/${ZK_PID_OF[$(ens_mnt 1)]}/ns/net")" != "$(readlink /proc/self/ns/net)" ] ||
        fail "replica 1 runs in the test's network namespace"
    [ "$(readlink "/proc/${ZK_PID_OF[$(ens_mnt 1)]}/ns/mnt")" = "$(readlink /proc/self/ns/mnt)" ] ||
        fail "replica 1 runs in another mount namespace"
}
