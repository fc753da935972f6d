#!/usr/bin/env bash
# mkdeb.sh — `make deb`: a Debian binary package of zkfs built from this
# tree with Debian 12's own tools (dpkg-deb, dpkg-shlibdeps, dpkg-buildflags;
# no debian/ source package needed).
#
#   scripts/mkdeb.sh [OUTDIR]        writes OUTDIR/zkfs_VERSION_ARCH.deb
#                                    (default build/) and prints its path
#
# The binary is compiled again into build-deb/ with Debian's hardening
# flags (dpkg-buildflags), installed by `make install` under a staging
# root with Debian's paths (/usr, units in /lib/systemd/system as
# Debian 12 keeps them), stripped, its manual pages and changelog
# compressed (gzip -9n), /etc/zkfs/zoo.cfg marked as a conffile, and
# Depends computed by dpkg-shlibdeps from the libraries the binary links
# (libfuse3-3, libuv1, liblmdb0, libzstd1, zlib1g, libsodium23, libc6),
# plus fuse3 for fusermount3 and mount.fuse3. Files are owned by root.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/build}
cd "$root"
for t in dpkg-deb dpkg-shlibdeps dpkg-buildflags dpkg-architecture; do
    command -v "$t" >/dev/null || {
        echo "mkdeb: $t is missing (apt-get install dpkg-dev)" >&2
        exit 1
    }
done

version=$(sed -n 's/^#define ZK_VERSION "\(.*\)"$/\1/p' include/zk_version.h)
[ -n "$version" ] || { echo "mkdeb: no ZK_VERSION in include/zk_version.h" >&2; exit 1; }
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
export DEB_BUILD_MAINT_OPTIONS=hardening=+all
cflags="-O2 -g $(dpkg-buildflags --get CPPFLAGS) $(dpkg-buildflags --get CFLAGS)"
ldflags=$(dpkg-buildflags --get LDFLAGS)

make --no-print-directory -j"${JOBS:-2}" B=build-deb OPT="$cflags" \
    LDFLAGS="$ldflags" build-deb/zkfs >&2

work=$(mktemp -d "${TMPDIR:-/tmp}/zkfs-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
stage=$work/root
make --no-print-directory B=build-deb PREFIX=/usr UNITDIR=/lib/systemd/system \
    DESTDIR="$stage" install >/dev/null
strip --remove-section=.comment --remove-section=.note \
    --strip-unneeded "$stage/usr/bin/zkfs"
gzip -9n "$stage"/usr/share/man/man*/*
doc=$stage/usr/share/doc/zkfs
install -d "$doc"
install -m 644 dist/debian/copyright "$doc/copyright"
sed -e "s/@VERSION@/$version/" \
    -e "s/@DATE@/$(date -R -d "@${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}")/" \
    dist/debian/changelog | gzip -9n >"$doc/changelog.gz"
chmod 644 "$doc/changelog.gz"

# dpkg-shlibdeps reads a source package's debian/control: a minimal one.
mkdir -p "$work/src/debian"
printf 'Source: zkfs\n\nPackage: zkfs\nArchitecture: any\n' >"$work/src/debian/control"
deps=$(cd "$work/src" && dpkg-shlibdeps -O "$stage/usr/bin/zkfs" 2>/dev/null |
    sed -n 's/^shlibs:Depends=//p')
[ -n "$deps" ] || { echo "mkdeb: dpkg-shlibdeps found no dependencies" >&2; exit 1; }

install -d "$stage/DEBIAN"
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" \
    -e "s/@DEPENDS@/$deps, fuse3/" dist/debian/control.in >"$stage/DEBIAN/control"
(cd "$stage" && find etc -type f | sed 's|^|/|') >"$stage/DEBIAN/conffiles"
(cd "$stage" && find usr lib -type f -print0 | sort -z | xargs -0 md5sum) \
    >"$stage/DEBIAN/md5sums"
chmod 644 "$stage/DEBIAN/control" "$stage/DEBIAN/conffiles" "$stage/DEBIAN/md5sums"

mkdir -p "$out"
deb=$out/zkfs_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >&2
echo "$deb"
