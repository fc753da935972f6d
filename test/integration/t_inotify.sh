#!/usr/bin/env bash
# inotify on a mount sees local changes: create, modify, close_write,
# moved_from/moved_to, delete.
. "$(dirname "$0")/lib.sh"

M=$ZK_TMP/mnt
zk_start "$ZK_TMP/data" "$M"
mkdir "$M/w"

ev=$ZK_TMP/events
zk_bg inotifywait -m -e create,modify,close_write,delete,moved_from,moved_to,attrib \
    --format '%e %f' -o "$ev" "$M/w" 2>"$ZK_TMP/inotify.err"
wait_for grep -q "Watches established" "$ZK_TMP/inotify.err" ||
    fail "inotifywait did not start"

echo a >"$M/w/x"
chmod 600 "$M/w/x"
mv "$M/w/x" "$M/w/y"
rm "$M/w/y"
wait_for grep -q "^DELETE y$" "$ev" || { cat "$ev"; fail "no DELETE y"; }
cat "$ev"
for e in "CREATE x" "MODIFY x" "CLOSE_WRITE,CLOSE x" "ATTRIB x" "MOVED_FROM x" \
    "MOVED_TO y" "DELETE y"; do
    grep -qx "$e" "$ev" || fail "inotifywait did not report '$e'"
done
# In order: create before move before delete.
order=$(grep -nE '^(CREATE x|MOVED_TO y|DELETE y)$' "$ev" | cut -d: -f2 | paste -sd/)
assert_eq "CREATE x/MOVED_TO y/DELETE y" "$order" "event order"

log "a watch on a file sees its deletion (IN_DELETE_SELF)"
echo b >"$M/w/s"
ev2=$ZK_TMP/events2
zk_bg inotifywait -m -e delete_self --format '%e' -o "$ev2" "$M/w/s" \
    2>"$ZK_TMP/inotify2.err"
wait_for grep -q "Watches established" "$ZK_TMP/inotify2.err" ||
    fail "inotifywait on the file did not start"
rm "$M/w/s"
wait_for grep -qx "DELETE_SELF" "$ev2" || { cat "$ev2"; fail "no IN_DELETE_SELF"; }

zk_stop "$M"
