#!/usr/bin/env bash
# Plain shell tools on a mount: echo/cat/ls, mkdir/rm/rmdir, mv (also
# replacing a target), sed -i, `set -C` exclusive create, >> appends, and
# two concurrent appenders that must not lose a line.
. "$(dirname "$0")/lib.sh"

M=$ZK_TMP/mnt
zk_start "$ZK_TMP/data" "$M"

log "echo, cat, ls"
echo hello >"$M/f"
assert_eq hello "$(cat "$M/f")" "content"
assert_eq 6 "$(stat -c %s "$M/f")" "st_size"
assert_eq f "$(ls "$M")" "ls of the root (the control file is hidden)"

log "mkdir, rmdir ENOTEMPTY, rm"
mkdir "$M/d"
echo x >"$M/d/a"
assert_eq a "$(ls "$M/d")" "ls d"
assert_fail rmdir "$M/d"
assert_match "not empty" "$ZK_ERR" "rmdir of a non-empty directory"
rm "$M/d/a"
assert_eq "" "$(ls "$M/d")" "ls d after rm"
rmdir "$M/d"
[ ! -e "$M/d" ] || fail "d still exists after rmdir"

log "mv: rename, replace a target, move between directories"
echo one >"$M/a"
echo two >"$M/b"
mv "$M/a" "$M/b"
assert_eq one "$(cat "$M/b")" "replaced target"
[ ! -e "$M/a" ] || fail "a still exists after mv a b"
mkdir "$M/d1" "$M/d2"
mv "$M/b" "$M/d1/b"
mv "$M/d1" "$M/d2/d1"
assert_eq one "$(cat "$M/d2/d1/b")" "content after moving its directory"

log "sed -i (write to a temporary file, then rename over)"
printf 'x=1\ny=2\n' >"$M/conf"
sed -i 's/x=1/x=3/' "$M/conf"
assert_eq "$(printf 'x=3\ny=2')" "$(cat "$M/conf")" "sed -i result"

log "set -C: exclusive create"
assert_fail bash -c 'set -C; echo new >"$1"' _ "$M/f"
assert_eq hello "$(cat "$M/f")" "content after the refused exclusive create"
bash -c 'set -C; echo new >"$1"' _ "$M/fresh"
assert_eq new "$(cat "$M/fresh")" "exclusive create of a new file"

log "set -C race: exactly one of 8 concurrent creators wins"
pids=()
for i in $(seq 1 8); do
    bash -c 'set -C; echo "$2" >"$1"' _ "$M/race" "$i" 2>/dev/null &
    pids+=($!)
done
ZK_PIDS+=("${pids[@]}")
wins=0
for p in "${pids[@]}"; do
    if wait "$p"; then wins=$((wins + 1)); fi
done
assert_eq 1 "$wins" "winners of the exclusive create"
assert_match '^[1-8]$' "$(cat "$M/race")" "the winner's content"

log ">> appends; : > truncates"
echo a >"$M/l"
echo b >>"$M/l"
assert_eq "$(printf 'a\nb')" "$(cat "$M/l")" "appended"
: >"$M/l"
assert_eq 0 "$(stat -c %s "$M/l")" "size after truncation"

log "two concurrent appenders"
: >"$M/app"
appender() { for i in $(seq 1 150); do echo "$1 $i" >>"$M/app"; done; }
appender A & pa=$!
appender B & pb=$!
ZK_PIDS+=("$pa" "$pb")
wait "$pa"
wait "$pb"
assert_eq 300 "$(wc -l <"$M/app")" "lines after 2 x 150 appends"
assert_eq 150 "$(grep -cE '^A [0-9]+$' "$M/app")" "intact A lines"
assert_eq 150 "$(grep -cE '^B [0-9]+$' "$M/app")" "intact B lines"
assert_eq "$(seq 1 150)" "$(awk '$1 == "A" { print $2 }' "$M/app")" \
    "A's lines in order"

zk_stop "$M"
