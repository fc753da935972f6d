#!/usr/bin/env bash
# The Debian package (make deb, scripts/mkdeb.sh): it builds from the tree;
# its control data names the release zkfs --version prints, the host's
# architecture and a Depends list of Debian packages that exist (the
# libraries the binary links, found by dpkg-shlibdeps, and fuse3); it
# holds the binary (stripped, hardened, running), the three manual pages
# (compressed, rendering), the systemd unit, bash completion, the default
# configuration as a conffile, copyright and changelog, all owned by root
# and matching its md5sums; lintian reports no error. Nothing is
# installed on this machine.
. "$(dirname "$0")/lib.sh"

root=$(cd "$(dirname "$0")/../.." && pwd)
command -v lintian >/dev/null || fail "lintian is missing (scripts/deps.sh --tests installs it)"

log "build it"
deb=$("$root/scripts/mkdeb.sh" "$ZK_TMP" 2>"$ZK_TMP/build.log") ||
    { tail -n 20 "$ZK_TMP/build.log" >&2; fail "scripts/mkdeb.sh failed"; }
[ -f "$deb" ] || fail "no package at [$deb]"
version=$("$ZKFS" --version | sed -n 's/^zkfs \([^ ,]*\).*/\1/p' | head -n 1)
[ -n "$version" ] || fail "no version from zkfs --version"
arch=$(dpkg --print-architecture)
assert_eq "$ZK_TMP/zkfs_${version}_${arch}.deb" "$deb" "package file name"

log "control data"
field() { dpkg-deb -f "$deb" "$1"; }
assert_eq zkfs "$(field Package)" Package
assert_eq "$version" "$(field Version)" Version
assert_eq "$arch" "$(field Architecture)" Architecture
assert_match '^.+ <.+@.+>$' "$(field Maintainer)" Maintainer
[ "$(field Installed-Size)" -gt 100 ] || fail "Installed-Size $(field Installed-Size)"
deps=$(field Depends)
log "Depends: $deps"
for p in libc6 libfuse3-3 fuse3 libuv1 liblmdb0 libzstd1 zlib1g libsodium23; do
    grep -qE "(^|, )$p( |,|$)" <<<"$deps" || fail "Depends lacks $p"
done
for p in $(tr ',' '\n' <<<"$deps" | awk '{ print $1 }'); do
    dpkg-query -W "$p" >/dev/null 2>&1 || apt-cache show "$p" >/dev/null 2>&1 ||
        fail "Depends names $p, which is no Debian package here"
done
assert_match '^ZooKeeper' "$(field Description)" Description

log "contents"
dpkg-deb -c "$deb" >"$ZK_TMP/contents"
for f in ./usr/bin/zkfs ./usr/share/man/man8/zkfs.8.gz \
    ./usr/share/man/man5/zkfs.conf.5.gz ./usr/share/man/man7/zkfs.7.gz \
    ./lib/systemd/system/zkfs@.service ./etc/zkfs/zoo.cfg \
    ./usr/share/bash-completion/completions/zkfs \
    ./usr/share/doc/zkfs/copyright ./usr/share/doc/zkfs/changelog.gz; do
    grep -q " $f\$" "$ZK_TMP/contents" || fail "the package lacks $f"
done
awk '$2 != "root/root" { print }' "$ZK_TMP/contents" | grep . &&
    fail "files not owned by root"
assert_eq /etc/zkfs/zoo.cfg "$(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles)" conffiles
x=$ZK_TMP/x
dpkg-deb -x "$deb" "$x"
(cd "$x" && dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./md5sums | md5sum -c --quiet) ||
    fail "md5sums do not match the contents"
assert_match "^zkfs $version" "$("$x/usr/bin/zkfs" --version)" "the packaged binary runs"
readelf -S "$x/usr/bin/zkfs" >"$ZK_TMP/sections"
grep -q '\.symtab' "$ZK_TMP/sections" && fail "the binary is not stripped"
readelf -d "$x/usr/bin/zkfs" >"$ZK_TMP/dynamic"
grep -q BIND_NOW "$ZK_TMP/dynamic" || fail "the binary is not linked with -z now"
for p in "$x"/usr/share/man/man*/*.gz; do
    MANWIDTH=80 man -l "$p" >/dev/null 2>&1 || fail "$p does not render"
done
cmp "$x/etc/zkfs/zoo.cfg" "$root/dist/zoo.cfg" || fail "the packaged config differs from dist/zoo.cfg"
grep -q '^ExecStart=/usr/bin/zkfs mount -f -c /etc/zkfs/zoo.cfg %f$' \
    "$x/lib/systemd/system/zkfs@.service" || fail "the unit does not run /usr/bin/zkfs"

log "lintian: no errors"
lintian --no-tag-display-limit "$deb" >"$ZK_TMP/lintian" 2>&1 || true
cat "$ZK_TMP/lintian"
grep -q '^E: ' "$ZK_TMP/lintian" && fail "lintian reports errors"
grep -q 'zkfs' "$ZK_TMP/lintian" && log "(lintian warnings above: not errors)"
exit 0
