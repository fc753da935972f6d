#!/usr/bin/env bash
# `zkfs --version` / `zkfs version` name the release and the on-disk and
# wire format versions (the same numbers as the headers define), and
# `zkfs status` fits an 80-column terminal: with paths far longer than a
# line, and with the members table of a 3-server ensemble.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ens_lib.sh"

root=$(cd "$(dirname "$0")/../.." && pwd)
hdr() { sed -n "s/^#define $1  *\"\{0,1\}\([0-9.a-z~+-]*\)\"\{0,1\}.*/\1/p" "$root/include/$2"; }

log "--version and version agree and name every format"
assert_rc 0 "$ZKFS" --version
v=$ZK_OUT
assert_rc 0 "$ZKFS" version
assert_eq "$v" "$ZK_OUT" "zkfs version = zkfs --version"
assert_eq "zkfs $(hdr ZK_VERSION zk_version.h)" "$(sed -n 1p <<<"$v")" "release line"
assert_match "^on-disk format: store $(hdr ZK_STORE_FORMAT zk_store.h), transaction encoding $(hdr ZK_TXN_VERSION zk_txn.h)\$" \
    "$(sed -n 2p <<<"$v")" "on-disk line"
assert_match "^wire protocol: peer frame $(hdr ZK_FRAME_VERSION zk_frame.h), Zab messages $(hdr ZK_ZAB_MSG_VERSION zk_zab.h), " \
    "$(sed -n 3p <<<"$v")" "wire line"
assert_rc 0 "$ZKFS" version --help
assert_match '^Usage: zkfs version' "$ZK_OUT" "version --help"
assert_rc 2 "$ZKFS" version extra

# fits80 TEXT: no line wider than 80 columns.
fits80() {
    local long
    long=$(awk 'length($0) > 80' <<<"$1")
    [ -z "$long" ] || fail "status lines over 80 columns:
$long"
}

log "status with paths of 200+ characters fits in 80 columns"
deep=$ZK_TMP/$(printf 'a-rather-long-directory-name-%02d/' 1 2 3 4 5 6 7)
zk_start "${deep}data" "${deep}mnt"
assert_rc 0 "$ZKFS" status "${deep}mnt"
fits80 "$ZK_OUT"
assert_match '^mountpoint  /.*\.\.\..*/mnt$' "$(grep '^mountpoint' <<<"$ZK_OUT")" "elided mountpoint"
assert_rc 0 "$ZKFS" status --json "${deep}mnt"
assert_match "\"mountpoint\":\"${deep}mnt\"" "$ZK_OUT" "--json keeps the whole path"
zk_stop "${deep}mnt"

log "status of a 3-server ensemble (members listed) fits in 80 columns"
ens_setup 3
ens_start_all
echo x >"$(ens_mnt 1)/f"
ens_wait_synced
for i in 1 2 3; do
    assert_rc 0 "$ZKFS" status "$(ens_mnt "$i")"
    fits80 "$ZK_OUT"
    assert_eq 3 "$(grep -cE '^  [1-3]\*? +voter +' <<<"$ZK_OUT")" "member rows on $i"
done
printf '%s\n' "$ZK_OUT"
