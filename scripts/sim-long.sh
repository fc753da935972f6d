#!/usr/bin/env bash
# sim-long.sh — a long simulator run, in chunks recorded as they complete,
# so that a run stopped at any time leaves an exact account of what passed.
#
# Usage: scripts/sim-long.sh FIRST COUNT [CHUNK] [-- ZKFS-SIM-ARGS...]
#   runs seeds FIRST .. FIRST+COUNT-1 of build/zkfs-sim (or $ZK_SIM) in
#   chunks of CHUNK seeds (default 1000), one process at a time, and
#   prints one line per chunk: its seeds, "passed" or the failure, the
#   transactions committed, wall and CPU seconds, and the time it ended.
#   A failing seed is printed with its replay line and the run goes on
#   with the next seed (a failure does not hide the rest of the range).
#   Without --replicas/--observers every seed picks its own mix: 3 voters
#   (odd seeds) or 5 (even), 0-2 observers ((seed/2) % 3), every seventh
#   seed --counter-max 40 (test/sim/main.c).
# Run it niced, with its output in a file:
#   nice -n 19 scripts/sim-long.sh 1000001 100000 1000 > sim-long.log 2>&1 &
set -uo pipefail
sim=${ZK_SIM:-build/zkfs-sim}
[ $# -ge 2 ] || { echo "usage: $0 FIRST COUNT [CHUNK] [-- ARGS]" >&2; exit 2; }
first=$1 count=$2 chunk=${3:-1000}
shift $(( $# >= 3 ? 3 : 2 ))
[ "${1:-}" = "--" ] && shift
[ -x "$sim" ] || { echo "$0: $sim is not built" >&2; exit 2; }

tmp=$(mktemp -d /tmp/zkfs-simlong.XXXXXX)
child=
trap 'rm -rf "$tmp"' EXIT
# Stopped (kill PID): the running chunk stops too and is not recorded.
trap '[ -n "$child" ] && kill "$child" 2>/dev/null; wait
      echo "sim-long: stopped $(date -u +%FT%TZ)"; exit 143' TERM INT

# CPU seconds of the children reaped so far (bash's times builtin, run
# in this shell: a subshell's children are not ours).
cpu_children() {
    times > "$tmp/times"
    tail -n 1 "$tmp/times" | awk '{ for (i = 1; i <= 2; i++) {
        split($i, p, "m"); sub("s", "", p[2]); t += p[1] * 60 + p[2] }
        printf "%.1f", t }'
}

end=$(( first + count ))
echo "sim-long: seeds $first..$(( end - 1 )) in chunks of $chunk," \
     "$sim $*, started $(date -u +%FT%TZ)"
fails=0 passed=0
s=$first
while [ "$s" -lt "$end" ]; do
    n=$(( end - s < chunk ? end - s : chunk ))
    cpu_children > "$tmp/c0"
    w0=$(date +%s.%N)
    "$sim" --seed "$s" --seeds "$n" "$@" > "$tmp/out" 2>&1 &
    child=$!
    wait "$child"
    rc=$?
    child=
    wall=$(awk -v a="$w0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    cpu_children > "$tmp/c1"
    cpu=$(awk -v a="$(cat "$tmp/c0")" -v b="$(cat "$tmp/c1")" \
          'BEGIN { printf "%.1f", b - a }')
    if [ $rc -eq 0 ]; then
        txns=$(sed -n 's/.* \([0-9]*\) transactions committed$/\1/p' \
               "$tmp/out" | tail -n 1)
        lin=$(sed -n 's/.* \([0-9]*\) register operations linearizable.*/\1/p' \
              "$tmp/out" | tail -n 1)
        echo "chunk $s..$(( s + n - 1 )): passed, $txns txns," \
             "${lin:-?} register ops, wall ${wall}s, cpu ${cpu}s, $(date -u +%T)"
        passed=$(( passed + n ))
        s=$(( s + n ))
        continue
    fi
    # The failing seed (a broken invariant, or a core assertion that
    # aborted); the seeds before it passed. Anything else stops the run.
    bad=$(sed -n 's/^FAIL seed \([0-9]*\):.*/\1/p; s/.*aborted in seed \([0-9]*\).*/\1/p' \
          "$tmp/out" | head -n 1)
    echo "chunk $s..$(( s + n - 1 )): FAILED (exit $rc), wall ${wall}s," \
         "cpu ${cpu}s, $(date -u +%T)"
    grep -E '^(FAIL|replay)|aborted' "$tmp/out" | sed 's/^/  /'
    if [ -z "$bad" ]; then
        tail -n 5 "$tmp/out" | sed 's/^/  /'
        echo "sim-long: no failing seed named; stopped at $s"
        exit 1
    fi
    fails=$(( fails + 1 ))
    passed=$(( passed + bad - s ))
    s=$(( bad + 1 ))
done
echo "sim-long: $passed seeds passed, $fails failed, ended $(date -u +%FT%TZ)"
[ $fails -eq 0 ]
