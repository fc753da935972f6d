#!/usr/bin/env bash
# t_ens_listing.sh — the listings a daemon keeps (fs/listing.c) follow
# every change its replica applies, on a 3-replica ensemble:
#  1. a name created, deleted or renamed through one mount is listed (or
#     not) by `ls` on another mount right after `zkfs sync` there — no
#     waiting — while that mount keeps the directory's listing (listed
#     before each change, so the change is patched in, not read again:
#     the metrics say so); `ls -l` of a directory of 20 made elsewhere
#     asks no LOOKUP of its children (READDIRPLUS gave their attributes);
#  2. a follower held back past the leader's DIFF window catches up by
#     snapshot: the listings it kept from the old tree are dropped, and
#     `ls` there shows the new tree's children at once.
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"
# shellcheck source=ens_lib.sh
. "$here/ens_lib.sh"

export ZKFS_LOG_KEEP=50
ens_setup 3 && ens_start_all
L=$(ens_leader)
F=$(ens_follower)
O=1
while [ "$O" = "$L" ] || [ "$O" = "$F" ]; do O=$((O + 1)); done
ml=$(ens_mnt "$L") mf=$(ens_mnt "$F") mo=$(ens_mnt "$O")
FLOG=$ZK_TMP/zkfs.r$F.log

names() { ls -A "$1" | sort | tr '\n' ' '; }
# listed_now MNT DIR "NAMES" WHAT: after zkfs sync on MNT, DIR's listing
# there is NAMES (sorted), at once.
listed_now() {
    "$ZKFS" sync "$1/$2" || fail "$4: zkfs sync $1/$2"
    local got
    got=$(names "$1/$2")
    [ "$got" = "$3" ] || fail "$4: listing of $2 on $1 is [$got], expected [$3]"
}

log "1. changes through other mounts, listed after zkfs sync"
ens_mkdir_seen q
ens_mkdir_seen q2
p0=$(zk_metric "$mf" zkfs_listing_patches_total)
want=""
for i in $(seq 1 12); do
    src=$ml
    [ $((i % 2)) = 0 ] && src=$mo
    names "$mf/q" >/dev/null            # kept (and maybe cached by the kernel)
    echo "$i" >"$src/q/n$i"
    want=$(printf '%s\n' $want "n$i" | sort | tr '\n' ' ')
    listed_now "$mf" q "$want" "create n$i"
done
names "$mf/q" >/dev/null
rm "$ml/q/n3"
want=$(printf '%s\n' $want | grep -vx n3 | sort | tr '\n' ' ')
listed_now "$mf" q "$want" "rm n3"
mv "$mo/q/n4" "$mo/q/renamed"
want=$(printf '%s\n' $want | grep -vx n4 | { cat; echo renamed; } | sort | tr '\n' ' ')
listed_now "$mf" q "$want" "mv n4 renamed"
names "$mf/q2" >/dev/null
mv "$ml/q/n5" "$ml/q2/moved"
want=$(printf '%s\n' $want | grep -vx n5 | sort | tr '\n' ' ')
listed_now "$mf" q "$want" "mv n5 to q2 (source)"
listed_now "$mf" q2 "moved " "mv n5 to q2 (target)"
mv -T "$mo/q/n6" "$mo/q2/moved"         # over an existing name
want=$(printf '%s\n' $want | grep -vx n6 | sort | tr '\n' ' ')
listed_now "$mf" q "$want" "mv n6 over q2/moved (source)"
listed_now "$mf" q2 "moved " "mv n6 over q2/moved (target)"
assert_eq 6 "$(cat "$mf/q2/moved")" "the moved file's content on $mf"
printf 'create /q/t1\ncreate /q/t2\nrm /q/n7\n' | "$ZKFS" txn "$ml" >/dev/null ||
    fail "zkfs txn"
want=$(printf '%s\n' $want t1 t2 | grep -vx n7 | sort | tr '\n' ' ')
listed_now "$mf" q "$want" "one transaction of three changes"
p1=$(zk_metric "$mf" zkfs_listing_patches_total)
[ "$((p1 - p0))" -ge 20 ] ||
    fail "the follower patched $((p1 - p0)) changes into its listings (expected >= 20)"
[ "$(zk_metric "$mf" zkfs_listing_mismatches_total)" = 0 ] ||
    fail "a change did not fit a kept listing: $(grep -i listing "$FLOG" | tail -3)"
for i in 1 2 3; do
    assert_eq "$want" "$(names "$(ens_mnt "$i")/q")" "listing of q on replica $i"
done

log "ls -l of a small directory needs no LOOKUP of its children"
# One transaction: the follower's kernel knows none of it (its echo
# thread replays only the directory's create, into the root it holds).
{ echo "create -d /small"
  for i in $(seq 1 20); do echo "create /small/f$i $i"; done; } |
    "$ZKFS" txn "$ml" >/dev/null || fail "zkfs txn of /small"
"$ZKFS" sync "$mf" || fail "zkfs sync $mf"
lookups() { zk_metric "$mf" 'zkfs_fuse_requests_total{op="lookup"}'; }
l0=$(lookups)
lb=$(lookups)           # reading the metrics file looks it up, too
n=$(ls -l "$mf/small" | grep -c '^-')
l1=$(lookups)
assert_eq 20 "$n" "files listed by ls -l"
# The directory itself is looked up once (the echo thread's replay of its
# create leaves an entry that expires at once: docs/filesystem.md, "Where
# changes are replayed"); its children come with their attributes in the
# READDIRPLUS reply.
[ "$((l1 - lb - (lb - l0)))" -le 1 ] ||
    fail "ls -l of 20 files made $((l1 - lb - (lb - l0))) lookups on the follower"

log "2. a snapshot install drops the kept listings"
installs() { grep -c "installed a snapshot" "$FLOG" || true; }
names "$mf/q" >/dev/null
names "$mf/q" >/dev/null                # kept here and in the kernel
kept=$(zk_metric "$mf" zkfs_listings_kept)
[ "$kept" -ge 1 ] || fail "the follower keeps no listing"
pid=$(ens_pid "$F")
kill -STOP "$pid"
ens_wait_unsynced "$ml" "$F"
ens_past_diff "$ml/bulk"
for i in 1 2 3; do echo "s$i" >"$ml/q/s$i"; done
rm "$ml/q/n1" "$ml/q/t1"
mv "$ml/q/n2" "$ml/q/r2"
rm "$ml/q2/moved"
n0=$(installs)
kill -CONT "$pid"
ens_wait_synced 90
[ "$(installs)" -gt "$n0" ] ||
    fail "replica $F did not catch up by snapshot: $(grep -i 'snap\|diff' "$FLOG" | tail -5)"
want=$(names "$ml/q")
assert_eq "$want" "$(names "$mf/q")" "listing of q on the follower after the snapshot"
assert_eq "" "$(names "$mf/q2")" "listing of q2 on the follower after the snapshot"
assert_eq "$(ls "$ml/bulk" | wc -l)" "$(ls "$mf/bulk" | wc -l)" \
    "entries of bulk on the follower"
# And it follows changes again afterwards.
names "$mf/q" >/dev/null
echo after >"$mo/q/after"
listed_now "$mf" q "$(printf '%s\n' $want after | sort | tr '\n' ' ')" \
    "create after the snapshot"
ens_trees_identical
