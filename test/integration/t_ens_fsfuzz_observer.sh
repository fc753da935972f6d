#!/usr/bin/env bash
# t_ens_fsfuzz_observer.sh — t_ens_fsfuzz_faults with an observer: three
# voters and server 4, an observer, each in a network namespace of its
# own; the syscall fuzzer runs on replica 1's mount and on the observer's
# (which writes its small batches on its loop thread, forwards every
# write to the leader and waits for it to come back applied), while the
# leader, a follower or the observer is paused, a replica or the observer
# is cut from the network, and replica 3 is killed with -9 and
# restarted. The same checks: no hang past its bound, no dead mount, no
# EIO, one tree everywhere, a later write on every mount. Knobs as
# t_ens_fsfuzz_faults's (defaults here: 8 rounds, 4 with ASan, 4 with
# ThreadSanitizer).
export ZK_FAULTFUZZ_OBSERVER=1
export ZK_FAULTFUZZ_ROUNDS=${ZK_FAULTFUZZ_ROUNDS:-8}
export ZK_FAULTFUZZ_ASAN_ROUNDS=${ZK_FAULTFUZZ_ASAN_ROUNDS:-4}
export ZK_FAULTFUZZ_TSAN_ROUNDS=${ZK_FAULTFUZZ_TSAN_ROUNDS:-4}
exec "$(dirname "$0")/t_ens_fsfuzz_faults.sh" "$@"
