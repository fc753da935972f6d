#!/usr/bin/env bash
# `zkfs mount -c` refuses a bad configuration with exit status 2 and one
# line saying why, and mounts nothing: unknown key, duplicate server id, a
# server line with two ports, no secretFile with three servers, a secret
# shorter than 16 bytes, an id that is not configured, a missing file,
# --id without -c, and a few more. A good configuration with a `myid` file
# in each data directory instead of --id runs an ensemble.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ens_lib.sh"

ens_setup 3
base=$(ens_cfg 1)
B=$ZK_TMP/bad
mkdir -p "$B"
M=$ZK_TMP/mbad
mkdir -p "$M"
ZK_MOUNTS+=("$M")   # in case a bad config mounts after all

# bad NAME REGEX [MOUNT-ARGS...]: the mount must exit 2 within 20 s, with
# one line on stderr matching REGEX (plus "Try 'zkfs mount --help'." for
# a usage error), and leave nothing mounted.
bad() {
    local name=$1 re=$2
    shift 2
    log "$name"
    assert_rc 2 timeout 20 "$ZKFS" mount -f "$@" "$M"
    local n
    # a usage error may add GNU's "Try 'zkfs mount --help'." line
    n=$(printf '%s\n' "$ZK_ERR" | grep -v "^Try 'zkfs mount --help'" | grep -c .)
    printf '  -> %s\n' "$ZK_ERR"
    assert_eq 1 "$n" "$name: lines on stderr"
    assert_match "$re" "$ZK_ERR" "$name: the reason"
    zk_is_mounted "$M" && fail "$name: $M is mounted"
    return 0
}

# variant NAME SED-SCRIPT: a copy of z1.cfg edited by sed.
variant() {
    sed "$2" "$base" >"$B/$1.cfg"
    printf '%s' "$B/$1.cfg"
}

cfg=$(variant unknown '/^dataDir=/a maxClientCnxns=60')
bad "unknown key" "$(basename "$cfg"):[0-9]+:.*(unknown|maxClientCnxns)" -c "$cfg" --id 1

cfg=$(variant dupid 's/^server\.3=/server.2=/')
bad "duplicate server id" "$(basename "$cfg"):[0-9]+:.*duplicate server id 2" -c "$cfg" --id 1

port=$(ens_port 2)
cfg=$(variant twoports "s/^server\\.2=127.0.0.1:$port\$/server.2=127.0.0.1:$port:$((port + 1000))/")
grep -q ":$((port + 1000))\$" "$cfg" || fail "variant twoports not written"
bad "a server line with two ports" "$(basename "$cfg"):[0-9]+:.*(one port|host:port)" -c "$cfg" --id 1

cfg=$(variant nosecret '/^secretFile=/d')
bad "no secretFile with 3 servers" "secretFile" -c "$cfg" --id 1

printf 'short secret\n' >"$B/short.secret"
chmod 600 "$B/short.secret"
cfg=$(variant shortsecret "s|^secretFile=.*|secretFile=$B/short.secret|")
bad "a secret of 12 bytes" "too short" -c "$cfg" --id 1

cfg=$(variant nosecretfile "s|^secretFile=.*|secretFile=$B/does-not-exist|")
bad "a secretFile that does not exist" "does-not-exist" -c "$cfg" --id 1

bad "an id that is not configured" "(id 9|9).*(not among|not configured|server\\.N)" -c "$base" --id 9

bad "a missing config file" "no-such\\.cfg.*(No such file|not found)" -c "$B/no-such.cfg" --id 1

bad "--id without -c" "(--id|-c)" --id 1

bad "no --id and no myid file" "myid|id" -c "$base"

cfg=$(variant sesst '/^dataDir=/a sessionTimeout=100000')
bad "sessionTimeout out of range" "sessionTimeout" -c "$cfg" --id 1

cfg=$(variant tick '/^dataDir=/a tickTime=2s')
bad "tickTime not a number" "tickTime" -c "$cfg" --id 1

cfg=$(variant noeq '/^dataDir=/a this line has no equals sign')
bad "a line without =" "$(basename "$cfg"):[0-9]+:" -c "$cfg" --id 1

for i in 1 2 3; do
    [ ! -e "$(ens_data "$i")/zkfs.mdb" ] || fail "a bad configuration created a store in $(ens_data "$i")"
    [ ! -e "$(ens_data "$i")" ] || log "note: $(ens_data "$i") was created: $(ls -A "$(ens_data "$i")")"
done

log "a good configuration with myid files instead of --id"
for i in 1 2 3; do
    mkdir -p "$(ens_data "$i")"
    echo "$i" >"$(ens_data "$i")/myid"
done
# as ens_launch, without --id
for i in 1 2 3; do
    mnt=$(ens_mnt "$i")
    mkdir -p "$mnt"
    "$ZKFS" mount -f -c "$(ens_cfg "$i")" "$mnt" >>"$ZK_TMP/zkfs.r$i.log" 2>&1 &
    ZK_PIDS+=("$!")
    ZK_MOUNTS+=("$mnt")
    ZK_PID_OF[$mnt]=$!
    ENS_UP[$i]=1
done
for i in 1 2 3; do ens__wait_mounted "$i"; done
ens_wait_leader
for i in 1 2 3; do
    assert_eq "$i" "$(ens_field "$i" my_id)" "my_id of the replica with myid $i"
done
echo works >"$(ens_mnt 2)/f"
for i in 1 3; do ens_wait_cat "$i" f works; done
ens_wait_synced
