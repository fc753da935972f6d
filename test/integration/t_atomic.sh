#!/usr/bin/env bash
# Readers never see a half-written value (SPEC §2 "write"). First a fixed
# sequence (helpers/versions.c); then, while a writer
# replaces a 200 kB file again and again, every read by another process
# returns one whole committed version. Three ways of writing, as real
# programs do: cp over the file (open with O_TRUNC, many write()s, close),
# dd conv=notrunc (in place, 4 KiB writes), and write-to-temp-then-rename
# (cp + mv, as editors and sed -i do).
. "$(dirname "$0")/lib.sh"

M=$ZK_TMP/mnt
zk_start "$ZK_TMP/data" "$M"

# First, deterministically, the sequence that tore reads when read-only
# opens used the page cache (docs/performance.md): every open file keeps
# reading its own version through a writer's O_TRUNC open and writes,
# commits of other sizes, newer readers and a MAP_PRIVATE mapping.
log "one version per open file, step by step"
out=$("$(zk_helper versions)" "$M/v") || fail "a reader saw another version: $out"

head -c 200000 /dev/urandom >"$ZK_TMP/A"
head -c 200000 /dev/urandom >"$ZK_TMP/B"

replace() {   # replace STYLE SRC
    case $1 in
    trunc) cp "$2" "$M/f" ;;
    inplace) dd if="$2" of="$M/f" bs=4096 conv=notrunc status=none ;;
    rename) cp "$2" "$M/.f.tmp" && mv "$M/.f.tmp" "$M/f" ;;
    esac
}

writer() {    # writer STYLE
    for _ in $(seq 1 30); do
        replace "$1" "$ZK_TMP/B"
        replace "$1" "$ZK_TMP/A"
    done
    touch "$ZK_TMP/done.$1"
}

# Reads until the writer is done; returns 1 (and says why) on the first
# read that is not exactly A or B.
reader() {    # reader STYLE
    local n=0 r=$ZK_TMP/read
    while [ ! -e "$ZK_TMP/done.$1" ]; do
        n=$((n + 1))
        if ! cat "$M/f" >"$r" 2>"$ZK_TMP/read.err"; then
            echo "  $1: read $n failed: $(cat "$ZK_TMP/read.err")"
            return 1
        fi
        if ! cmp -s "$r" "$ZK_TMP/A" && ! cmp -s "$r" "$ZK_TMP/B"; then
            echo "  $1: read $n returned $(stat -c %s "$r") bytes that are neither version"
            return 1
        fi
    done
    echo "  $1: $n reads, each a whole version"
}

failed=()
for style in trunc inplace rename; do
    log "writer style: $style"
    cp "$ZK_TMP/A" "$M/f"
    zk_bg writer "$style"
    wpid=$ZK_BG
    reader "$style" || failed+=("$style")
    wait "$wpid"
    cmp "$ZK_TMP/A" "$M/f" || fail "$style: final content is not A"
done
[ ${#failed[@]} -eq 0 ] || fail "readers saw partial values with: ${failed[*]}"
zk_stop "$M"
