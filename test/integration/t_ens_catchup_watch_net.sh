#!/usr/bin/env bash
# t_ens_catchup_watch_net.sh — t_ens_catchup_watch with the follower cut
# off by a network-namespace partition (it keeps running, goes looking,
# and rejoins when the link is up again) instead of paused.
ZK_CATCHUP_CUT=net exec "$(dirname "$0")/t_ens_catchup_watch.sh"
