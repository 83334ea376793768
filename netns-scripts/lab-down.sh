#!/usr/bin/env bash
# Removes what lab-up.sh made: the instance namespaces, their resolv.conf and
# the VPC namespace (veths go with their namespaces). Safe to run twice.
set -uo pipefail

P=${PLK_LAB_PREFIX:-plk}
VPC="$P-vpc"
for n in "$P-a" "$P-b" "$VPC"; do
  if [ -e "/run/netns/$n" ]; then
    ip netns del "$n" && echo "removed namespace $n"
  fi
  [ "$n" = "$VPC" ] || rm -rf "/etc/netns/$n"
done
