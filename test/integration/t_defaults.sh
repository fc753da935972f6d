#!/usr/bin/env bash
# `zkfs mount` with no arguments as root: the data directory /var/lib/zkfs
# and the mountpoint /mnt/zkfs, both created. Runs in a private mount
# namespace with empty directories bound over /mnt and /var/lib, so the
# host's real ones are not touched.
. "$(dirname "$0")/lib.sh"

mkdir -p "$ZK_TMP/mnt-dir" "$ZK_TMP/varlib"
cat >"$ZK_TMP/inner.sh" <<'INNER'
set -euo pipefail
mount --bind "$ZK_TMP/mnt-dir" /mnt
mount --bind "$ZK_TMP/varlib" /var/lib
out=$(timeout 60 "$ZKFS" mount)
printf '%s\n' "$out"
[ "$out" = "zkfs: data directory /var/lib/zkfs
zkfs: mounted at /mnt/zkfs" ] || { echo "unexpected output"; exit 1; }
rc=0
grep -q ' /mnt/zkfs .* - fuse\.zkfs ' /proc/self/mountinfo ||
    { echo "/mnt/zkfs is not mounted"; rc=1; }
[ "$(stat -c %a /var/lib/zkfs)" = 700 ] || { echo "data dir mode"; rc=1; }
echo hello >/mnt/zkfs/f && [ "$(cat /mnt/zkfs/f)" = hello ] || rc=1
"$ZKFS" status /mnt/zkfs | grep -q '^data dir *\/var\/lib\/zkfs$' ||
    { echo "status names another data dir"; rc=1; }
"$ZKFS" umount /mnt/zkfs || { fusermount3 -u -z /mnt/zkfs; rc=1; }
exit "$rc"
INNER
unshare -m --propagation private bash "$ZK_TMP/inner.sh" ||
    fail "default directories (see above)"
[ -d "$ZK_TMP/varlib/zkfs" ] || fail "no data directory was created"
[ -d "$ZK_TMP/mnt-dir/zkfs" ] || fail "no mountpoint was created"
