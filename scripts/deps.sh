#!/usr/bin/env bash
# Installs the Debian packages zkfs needs to build, run and test, if any are
# missing. Safe to run again: it does nothing when everything is present.
# Usage: scripts/deps.sh [--tests]
set -euo pipefail

pkgs=(gcc make pkg-config libfuse3-dev fuse3 libuv1-dev liblmdb-dev
      libzstd-dev zlib1g-dev libsodium-dev check dpkg-dev)
if [ "${1:-}" = "--tests" ]; then
    pkgs+=(attr inotify-tools util-linux iproute2 procps psmisc man-db zstd
           lintian)
    # The fuzz targets (make fuzz): clang, and libFuzzer's runtime, which
    # Debian 12 ships in libclang-rt-14-dev, only recommended by clang-14
    # (and recommendations are not installed below).
    pkgs+=(clang libclang-rt-14-dev)
fi

missing=()
for p in "${pkgs[@]}"; do
    st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case "$st" in *"install ok installed"*) ;; *) missing+=("$p") ;; esac
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "zkfs: installing missing packages: ${missing[*]}" >&2
if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
    command -v sudo >/dev/null || {
        echo "zkfs: not root and no sudo; install as root: apt-get install ${missing[*]}" >&2
        exit 1
    }
else
    SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
