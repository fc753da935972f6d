#!/usr/bin/env bash
# inotify on a mount sees local changes: create, modify, close_write,
# moved_from/moved_to, delete.
. "$(dirname "$0")/lib.sh"

M=$ZK_TMP/mnt
zk_start "$ZK_TMP/data" "$M"
mkdir "$M/w"

ev=$ZK_TMP/events
zk_bg inotifywait -m -e create,modify,close_write,delete,moved_from,moved_to \
    --format '%e %f' -o "$ev" "$M/w" 2>"$ZK_TMP/inotify.err"
wait_for grep -q "Watches established" "$ZK_TMP/inotify.err" ||
    fail "inotifywait did not start"

echo a >"$M/w/x"
mv "$M/w/x" "$M/w/y"
rm "$M/w/y"
wait_for grep -q "^DELETE y$" "$ev" || { cat "$ev"; fail "no DELETE y"; }
cat "$ev"
for e in "CREATE x" "MODIFY x" "CLOSE_WRITE,CLOSE x" "MOVED_FROM x" \
    "MOVED_TO y" "DELETE y"; do
    grep -qx "$e" "$ev" || fail "inotifywait did not report '$e'"
done
# In order: create before move before delete.
order=$(grep -nE '^(CREATE x|MOVED_TO y|DELETE y)$' "$ev" | cut -d: -f2 | paste -sd/)
assert_eq "CREATE x/MOVED_TO y/DELETE y" "$order" "event order"

zk_stop "$M"
