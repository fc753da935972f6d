#!/usr/bin/env bash
# The manual pages (docs/man) render without warnings at 80 columns and
# stay true: every command of `zkfs --help` is a section of zkfs(8) and
# every option its --help lists is mentioned there; every mount(8) option
# zkfs reads (fs/mntopts.c) is in zkfs(8); every key the configuration
# parser accepts (replica/config.c) is in zkfs.conf(5), and every key
# zkfs.conf(5) documents is accepted by the parser. No mount needed.
. "$(dirname "$0")/lib.sh"

root=$(cd "$(dirname "$0")/../.." && pwd)
man_dir=$root/docs/man
command -v man >/dev/null || fail "man is missing (scripts/deps.sh --tests installs man-db)"

log "every page renders without warnings (MANWIDTH=80 man --warnings -l)"
for p in zkfs.8 zkfs.conf.5 zkfs.7; do
    [ -f "$man_dir/$p" ] || fail "no page docs/man/$p"
    warn=$(MANWIDTH=80 man --warnings -l "$man_dir/$p" 2>&1 >/dev/null)
    assert_eq "" "$warn" "warnings of $p"
    wide=$(MANWIDTH=80 man -l "$man_dir/$p" 2>/dev/null | LC_ALL=C.UTF-8 sed 's/[^ -~]/?/g' | awk 'length($0) > 80')
    assert_eq "" "$wide" "lines over 80 columns in $p"
done
render() { MANWIDTH=200 man -l "$man_dir/$1" 2>/dev/null | sed 's/‐/-/g'; }
page8=$(render zkfs.8)
page5=$(render zkfs.conf.5)

log "every command of zkfs --help has a section in zkfs(8), with its options"
verbs=$("$ZKFS" --help | awk '/^  [a-z]+ / || /^  [a-z]+$/ { print $1 }')
[ "$(wc -w <<<"$verbs")" -ge 10 ] || fail "too few commands parsed: $verbs"
for v in $verbs; do
    grep -q "^\.SS $v\$" "$man_dir/zkfs.8" || fail "zkfs(8) has no section for '$v'"
    opts=$("$ZKFS" "$v" --help | grep -oE '(^|[ [,])--?[a-z][a-z-]*' | sed 's/^[ [,]//' | sort -u || true)
    for o in $opts; do
        grep -qF -- "$o" <<<"$page8" || fail "zkfs(8) does not mention option $o of $v"
    done
done

log "every mount(8) option of fs/mntopts.c is in zkfs(8)"
own=$(grep -oE '"(config|data|id)=", "|"foreground"' "$root/fs/mntopts.c" | tr -d '", ')
[ "$(wc -w <<<"$own")" -eq 4 ] || fail "mount options not found in fs/mntopts.c: $own"
for o in $own; do
    grep -qE -- "(^| )$o" <<<"$page8" || fail "zkfs(8) does not describe mount option $o"
done

log "every key the parser accepts is in zkfs.conf(5), and vice versa"
keys=$(awk '/key_names\[K_COUNT\] = \{/,/\};/' "$root/replica/config.c" | grep -oE '"[A-Za-z.]+"' | tr -d '"')
[ "$(wc -w <<<"$keys")" -ge 6 ] || fail "keys not found in replica/config.c: $keys"
for k in $keys server.N; do
    grep -qE "^ {7}$k=" <<<"$page5" || fail "zkfs.conf(5) has no entry for $k"
done
documented=$(grep -oE '^ {7}[A-Za-z.]+=' <<<"$page5" | tr -d ' =')
for k in $documented; do
    [ "$k" = server.N ] && continue
    grep -qx "$k" <<<"$keys" || fail "zkfs.conf(5) documents $k, which the parser does not know"
done
# The parser itself agrees: each documented key (with a valid value) is
# not an unknown key.
for k in $documented; do
    case $k in
        server.N) line="server.1=127.0.0.1:2888" ;;
        dataDir) line="dataDir=$ZK_TMP/d" ;;
        secretFile) head -c 32 /dev/urandom >"$ZK_TMP/secret"; line="secretFile=$ZK_TMP/secret" ;;
        *) line="$k=5" ;;
    esac
    printf 'dataDir=%s\n%s\n' "$ZK_TMP/d" "$line" | awk '!seen[$0]++' >"$ZK_TMP/k.cfg"
    out=$("$ZKFS" mount -c "$ZK_TMP/k.cfg" --data "$ZK_TMP/d" -o no_such_option "$ZK_TMP/m" 2>&1 || true)
    grep -q "unknown key" <<<"$out" && fail "the parser refuses documented key $k: $out"
done
true
