#!/usr/bin/env bash
# make install / make uninstall into a DESTDIR: the exact file list (the
# binary, the systemd unit naming the installed binary and config, the
# bash completion, the manual pages, the default config), PREFIX honoured,
# an existing config never overwritten and kept by uninstall once changed,
# and nothing installed left after uninstall. The installed default config
# mounts a standalone replica as is.
. "$(dirname "$0")/lib.sh"

root=$(cd "$(dirname "$0")/../.." && pwd)
mk() { timeout 300 make -s -C "$root" "$@"; }
files() { (cd "$1" && find . -type f -o -type l | sed 's|^\./||' | sort); }

mans=
for p in "$root"/docs/man/*.[1-8]; do
    [ -e "$p" ] || continue
    p=${p##*/}
    mans+="PREFIX/share/man/man${p##*.}/$p"$'\n'
done
# expected PREFIX: the sorted file list for that PREFIX
expected() {
    {
        echo "etc/zkfs/zoo.cfg"
        printf '%s\n' "PREFIX/bin/zkfs" "PREFIX/lib/systemd/system/zkfs@.service" \
            "PREFIX/share/bash-completion/completions/zkfs"
        printf '%s' "$mans"
    } | sed "s|^PREFIX/|${1#/}/|" | sort
}

log "make install DESTDIR=... (PREFIX /usr/local by default)"
D=$ZK_TMP/dest
mk install DESTDIR="$D" >"$ZK_TMP/install.log" || fail "make install: $(cat "$ZK_TMP/install.log")"
assert_eq "$(expected /usr/local)" "$(files "$D")" "installed files"
[ -x "$D/usr/local/bin/zkfs" ] || fail "zkfs not executable"
"$D/usr/local/bin/zkfs" --version >/dev/null || fail "installed zkfs does not run"
unit=$D/usr/local/lib/systemd/system/zkfs@.service
assert_match '^ExecStart=/usr/local/bin/zkfs mount -f -c /etc/zkfs/zoo.cfg %f$' "$(grep '^ExecStart=' "$unit")" "ExecStart"
assert_match '^ExecStop=/usr/local/bin/zkfs umount %f$' "$(grep '^ExecStop=' "$unit")" "ExecStop"
for kv in Type=notify After=network-online.target Wants=network-online.target Restart=on-failure; do
    grep -qx "$kv" "$unit" || fail "unit lacks $kv"
done
grep -q '@[A-Z]*@' "$unit" && fail "unsubstituted @VAR@ in the unit"
assert_eq "$(stat -c %a "$unit")" 644 "unit mode"
assert_eq "$(stat -c %a "$D/etc/zkfs/zoo.cfg")" 644 "config mode"
bash -n "$D/usr/local/share/bash-completion/completions/zkfs" || fail "completion script syntax"
# comp WORD...: what the installed completion offers for the last word.
comp() {
    bash -c '. "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _zkfs
             echo "${COMPREPLY[*]}"' comp "$D/usr/local/share/bash-completion/completions/zkfs" "$@"
}
assert_eq "mount" "$(comp zkfs mo)" "completion of a command"
assert_eq "--help --json" "$(comp zkfs status --)" "completion of status options"
for v in $("$ZKFS" --help | awk '/^  [a-z]+( |$)/ { print $1 }'); do
    assert_eq "$v" "$(comp zkfs "$v" | tr ' ' '\n' | grep -x "$v" || true)" "completion knows $v"
done

log "the default config has README's defaults and mounts a standalone replica"
cfg=$D/etc/zkfs/zoo.cfg
for kv in dataDir=/var/lib/zkfs tickTime=200 initLimit=50 syncLimit=5 sessionTimeout=4000; do
    grep -qx "$kv" "$cfg" || fail "default config lacks $kv"
done
sed "s|^dataDir=.*|dataDir=$ZK_TMP/data|" "$cfg" >"$ZK_TMP/zoo.cfg"
M=$ZK_TMP/m
mkdir -p "$M"
"$ZKFS" mount -f -c "$ZK_TMP/zoo.cfg" "$M" >"$ZK_TMP/mount.log" 2>&1 &
ZK_PID=$!
ZK_PIDS+=("$ZK_PID")
ZK_MOUNTS+=("$M")
ZK_PID_OF[$M]=$ZK_PID
wait_for -t 30 zk__up "$M" "$ZK_PID" || fail "no mount"
zk_pid_gone "$ZK_PID" && fail "the default config did not mount: $(cat "$ZK_TMP/mount.log")"
assert_match '^role +standalone$' "$("$ZKFS" status "$M" | grep '^role')" "role"
zk_stop "$M"

log "an existing config is kept by install, and by uninstall once changed"
echo "# local change" >>"$cfg"
mk install DESTDIR="$D" >"$ZK_TMP/install2.log" || fail "second make install"
grep -q "keeping the existing" "$ZK_TMP/install2.log" || fail "no 'keeping' message"
grep -q "^# local change" "$cfg" || fail "make install overwrote the config"
mk uninstall DESTDIR="$D" >"$ZK_TMP/uninstall.log" || fail "make uninstall"
assert_eq "etc/zkfs/zoo.cfg" "$(files "$D")" "left after uninstall (a changed config)"
rm "$cfg"

log "PREFIX=/usr; uninstall removes everything, the unchanged config too"
D2=$ZK_TMP/dest2
mk install DESTDIR="$D2" PREFIX=/usr >/dev/null || fail "make install PREFIX=/usr"
assert_eq "$(expected /usr)" "$(files "$D2")" "installed files (PREFIX=/usr)"
assert_match '^ExecStart=/usr/bin/zkfs ' "$(grep '^ExecStart=' "$D2/usr/lib/systemd/system/zkfs@.service")" "ExecStart (PREFIX=/usr)"
mk uninstall DESTDIR="$D2" PREFIX=/usr >/dev/null || fail "make uninstall PREFIX=/usr"
assert_eq "" "$(files "$D2")" "left after uninstall"
[ -e "$D2/etc/zkfs" ] && fail "/etc/zkfs left behind"
true
