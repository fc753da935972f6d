#!/usr/bin/env bash
# POSIX details tools depend on: utimensat/touch -d/touch -r/cp -p store
# st_mtime (make and rsync compare it; before 1970 too, the far ends
# clamped), a write or truncation by another
# user clears setuid/setgid, lseek(SEEK_END) on a writer's descriptor sees
# what it wrote, paths of PATH_MAX - 1 bytes from the mount root, one errno for
# hard links, symlinks, FIFOs, sockets and devices, and the nosuid,nodev
# default (-o suid,dev to change it). Values are checked again after a
# remount.
. "$(dirname "$0")/lib.sh"

D=$ZK_TMP/data
M=$ZK_TMP/mnt
chmod 755 "$ZK_TMP"
zk_start "$D" "$M"
chmod 777 "$M"
as_user() { setpriv --reuid=1000 --regid=1000 --clear-groups "$@"; }

log "times: touch -d, touch -r, cp -p, utimensat(UTIME_NOW)"
echo a >"$M/f"
touch -d '2001-02-03 04:05:06.789' "$M/f"
assert_eq "2001-02-03 04:05:06.789000000" "$(TZ=UTC date -r "$M/f" '+%F %T.%N')" "touch -d"
assert_eq a "$(cat "$M/f")" "data kept by touch"
echo ref >"$ZK_TMP/ref"
touch -d '1999-12-31 23:59:59' "$ZK_TMP/ref"
touch -r "$ZK_TMP/ref" "$M/f"
assert_eq "$(stat -c %Y "$ZK_TMP/ref")" "$(stat -c %Y "$M/f")" "touch -r"
cp -p "$ZK_TMP/ref" "$M/copy"
assert_eq "$(stat -c %Y "$ZK_TMP/ref")" "$(stat -c %Y "$M/copy")" "cp -p keeps mtime"
before=$(date +%s)
touch "$M/f"
[ "$(stat -c %Y "$M/f")" -ge "$before" ] || fail "touch (UTIME_NOW) sets the time to now"
mkdir "$M/dir"
touch -d '2010-01-01 00:00:00' "$M/dir"
assert_eq 1262304000 "$(TZ=UTC stat -c %Y "$M/dir")" "mtime of a directory"
touch -d '1960-01-01 12:00:00.25' "$M/old"
assert_eq "1960-01-01 12:00:00.250000000" "$(TZ=UTC date -r "$M/old" '+%F %T.%N')" "a time before 1970 is kept"
touch -d '1969-12-31 23:59:59.999' "$M/old1"
assert_eq "1969-12-31 23:59:59.999000000" "$(TZ=UTC date -r "$M/old1" '+%F %T.%N')" "1 ms before the epoch"
touch -d @9223372036854775807 "$M/far"
assert_eq 9223372036854774 "$(stat -c %Y "$M/far")" "a time beyond 64-bit milliseconds is clamped to the range"
touch -d @-9223372036854775807 "$M/far"
assert_eq -9223372036854774 "$(stat -c %Y "$M/far")" "and the same far before 1970"
assert_fail as_user touch -d '2000-01-01' "$M/f"
assert_match "not permitted|Permission denied" "$ZK_ERR" "another user cannot set a time"

log "make sees the stored times"
printf 'out: in\n\tcp in out\n' >"$M/Makefile"
echo 1 >"$M/in"
make -s -C "$M" out
touch -d '2000-01-01' "$M/in"
assert_match "up to date|Nothing to be done" "$(make -C "$M" out 2>&1)" "an older input"
touch -d '2030-01-01' "$M/in"
echo 2 >"$M/in"; touch -d '2030-01-01' "$M/in"
make -s -C "$M" out
assert_eq 2 "$(cat "$M/out")" "a newer input rebuilds"

log "setuid/setgid cleared by another user's write or truncation"
for how in 'echo y >>"$1"' 'echo y >"$1"' 'truncate -s 0 "$1"' \
           'perl -e "truncate(\$ARGV[0], 3) or die" "$1"'; do
    echo x >"$M/su"
    chmod 6777 "$M/su"
    as_user sh -c "$how" _ "$M/su"
    assert_eq 777 "$(stat -c %a "$M/su")" "after: $how"
done
echo x >"$M/su"
chmod 6767 "$M/su"
as_user sh -c 'echo y >>"$1"' _ "$M/su"
assert_eq 2767 "$(stat -c %a "$M/su")" "setgid without group exec stays"
chmod 6777 "$M/su"
echo y >>"$M/su"
assert_eq 6777 "$(stat -c %a "$M/su")" "root's write keeps the bits"

log "lseek(SEEK_END) on a writer's own descriptor"
echo hello >"$M/w"
out=$(perl -e 'open(F, "+<", $ARGV[0]) or die; sysseek(F, 0, 2);
    syswrite(F, "world\n"); print sysseek(F, 0, 2) + 0, "\n"; close(F) or die' "$M/w")
assert_eq 12 "$out" "SEEK_END after writing"
assert_eq 12 "$(stat -c %s "$M/w")" "size after close"

log "long paths: 4,095 bytes (PATH_MAX - 1) from the mount root"
c=$(printf 'd%.0s' {1..250})
rel=$c
for _ in $(seq 2 16); do rel=$rel/$c; done
(cd "$M" && mkdir -p "$rel")
name=$(printf 'f%.0s' $(seq 1 $((4095 - ${#rel} - 1))))
(cd "$M" && echo deep >"$rel/$name" && [ "$(cat "$rel/$name")" = deep ]) ||
    fail "a file at 4,095 bytes from the root"
(cd "$M" && mv "$rel/$name" "$rel/${name%f}g" && rm "$rel/${name%f}g") ||
    fail "rename and unlink at 4,095 bytes"
assert_fail sh -c 'cd "$1" && : >"$2/$3"' _ "$M" "$rel" "${name}x"
assert_match "too long" "$ZK_ERR" "4,096 bytes: ENAMETOOLONG (the kernel)"

log "links, symlinks, FIFOs, sockets, devices: EPERM"
assert_fail ln "$M/f" "$M/hard"
assert_match "not permitted" "$ZK_ERR" "link"
assert_fail ln -s f "$M/sym"
assert_match "not permitted" "$ZK_ERR" "symlink"
assert_fail mkfifo "$M/fifo"
assert_match "not permitted" "$ZK_ERR" "mkfifo"
assert_fail mknod "$M/null" c 1 3
assert_match "not permitted" "$ZK_ERR" "mknod c"
assert_fail mknod "$M/blk" b 7 0
assert_match "not permitted" "$ZK_ERR" "mknod b"

log "mount options: nosuid,nodev by default"
assert_match "nosuid" "$(awk -v m="$M" '$5 == m { print $6 }' /proc/self/mountinfo)" "nosuid"
assert_match "nodev" "$(awk -v m="$M" '$5 == m { print $6 }' /proc/self/mountinfo)" "nodev"

log "after a remount"
zk_stop "$M"
zk_start "$D" "$M" -o suid,dev
opts=$(awk -v m="$M" '$5 == m { print $6 }' /proc/self/mountinfo)
if grep -qE 'nosuid|nodev' <<<"$opts"; then
    fail "-o suid,dev: still $opts"
fi
assert_eq "$(stat -c %Y "$ZK_TMP/ref")" "$(stat -c %Y "$M/copy")" "cp -p time after remount"
assert_eq 1262304000 "$(TZ=UTC stat -c %Y "$M/dir")" "directory time after remount"
assert_eq "1960-01-01 12:00:00.250000000" "$(TZ=UTC date -r "$M/old" '+%F %T.%N')" "a time before 1970 after remount"
assert_eq 6777 "$(stat -c %a "$M/su")" "mode after remount"
zk_stop "$M"
