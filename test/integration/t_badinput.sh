#!/usr/bin/env bash
# Bad input gets a clear error and loses nothing: long names, data over
# 1 MiB (EFBIG, old content intact), hard links, device nodes and fifos,
# the control file, a foreign data directory, a corrupt store file.
. "$(dirname "$0")/lib.sh"

D=$ZK_TMP/data
M=$ZK_TMP/mnt
zk_start "$D" "$M"

log "a name over 255 bytes"
long=$(printf 'n%.0s' $(seq 1 256))
assert_fail bash -c 'echo x >"$1"' _ "$M/$long"
assert_match "too long" "$ZK_ERR" "error for a 256-byte name"
ok=$(printf 'n%.0s' $(seq 1 255))
echo x >"$M/$ok"
assert_eq x "$(cat "$M/$ok")" "a 255-byte name works"

log "data over 1 MiB: EFBIG, the old content stays"
echo old >"$M/f"
assert_fail bash -c 'head -c 1048577 /dev/zero >"$1"' _ "$M/f"
assert_match "File too large" "$ZK_ERR" "error for 1 MiB + 1"
assert_eq old "$(cat "$M/f")" "content after the refused write"
head -c 1048576 /dev/urandom >"$ZK_TMP/1m"
cp "$ZK_TMP/1m" "$M/big"
cmp "$ZK_TMP/1m" "$M/big" || fail "exactly 1 MiB did not round-trip"
assert_fail bash -c 'cat "$1" >>"$2"' _ "$ZK_TMP/1m" "$M/f"
assert_eq old "$(cat "$M/f")" "content after the refused append"

log "operations a znode cannot do"
assert_fail ln "$M/f" "$M/g"
[ ! -e "$M/g" ] || fail "hard link created"
assert_fail mkfifo "$M/p"
assert_fail mknod "$M/c" c 1 3
assert_fail ln -s f "$M/s"
if [ -e "$M/p" ] || [ -e "$M/c" ] || [ -L "$M/s" ]; then
    fail "special file created"
fi

log "the control file cannot be removed or renamed"
assert_fail rm -f "$M/.zkfs"
assert_fail mv "$M/.zkfs" "$M/ctl"
assert_fail mkdir "$M/.zkfs"
zk_stop "$M"

log "garbage -o"
mkdir -p "$ZK_TMP/m2"
ZK_MOUNTS+=("$ZK_TMP/m2")
assert_rc 1 timeout 60 "$ZKFS" mount --data "$D" -o 'no_such_option=1' "$ZK_TMP/m2"
zk_is_mounted "$ZK_TMP/m2" && fail "mounted with garbage -o"

log "a foreign data directory is refused and left alone"
F=$ZK_TMP/foreign
mkdir -p "$F"
head -c 4096 /dev/urandom >"$F/random.bin"
echo "my notes" >"$F/notes.txt"
before=$(cd "$F" && ls -A && sha256sum ./*)
assert_rc 1 timeout 60 "$ZKFS" mount --data "$F" "$ZK_TMP/m2"
printf '%s\n' "$ZK_ERR"
assert_match "zkfs data directory|foreign|not a zkfs" "$ZK_ERR" "reason given"
zk_is_mounted "$ZK_TMP/m2" && fail "mounted a foreign data directory"
assert_eq "$before" "$(cd "$F" && ls -A && sha256sum ./*)" "foreign files untouched"

log "a corrupt store file is refused"
[ -f "$D/zkfs.mdb" ] || fail "no store file $D/zkfs.mdb"
cp "$D/zkfs.mdb" "$ZK_TMP/saved.mdb"
dd if=/dev/urandom of="$D/zkfs.mdb" bs=4096 count=2 conv=notrunc status=none
assert_rc 1 timeout 60 "$ZKFS" mount --data "$D" "$ZK_TMP/m2"
printf '%s\n' "$ZK_ERR"
assert_match "corrupt|invalid|not a zkfs" "$ZK_ERR" "reason given"
zk_is_mounted "$ZK_TMP/m2" && fail "mounted a corrupt store"
true
