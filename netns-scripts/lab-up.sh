#!/usr/bin/env bash
# Builds a lab to poke at by hand: a VPC namespace and one instance namespace
# in each of two subnets, routed through the VPC namespace (the VPC router).
#
#   instance plk-a (10.0.1.10) --veth-- plk-vpc (10.0.1.1 | 10.0.2.1) --veth-- instance plk-b (10.0.2.10)
#
# Then `privlink up --config netns-scripts/lab.toml` puts the endpoint's ENI
# (a TUN) into plk-vpc; instances reach it through their default route.
# Idempotent: running it twice changes nothing. Undo with lab-down.sh.
set -euo pipefail

P=${PLK_LAB_PREFIX:-plk}   # namespace names: $P-vpc, $P-a, $P-b
VPC="$P-vpc"
declare -A SUBNET_PREFIX=([a]=10.0.1 [b]=10.0.2)

ns_exists() { [ -e "/run/netns/$1" ]; }

ns_exists "$VPC" || { ip netns add "$VPC"; echo "created namespace $VPC"; }
ip -n "$VPC" link set lo up
ip netns exec "$VPC" sysctl -qw net.ipv4.ip_forward=1

for s in a b; do
  inst="$P-$s"
  p=${SUBNET_PREFIX[$s]}
  ns_exists "$inst" || { ip netns add "$inst"; echo "created namespace $inst"; }
  ip -n "$inst" link set lo up
  if ! ip -n "$VPC" link show "sub-$s" >/dev/null 2>&1; then
    ip -n "$VPC" link add "sub-$s" type veth peer name eth0 netns "$inst"
    echo "created veth sub-$s ($VPC) <-> eth0 ($inst)"
  fi
  ip -n "$VPC" addr replace "$p.1/24" dev "sub-$s"
  ip -n "$VPC" link set "sub-$s" mtu 8500 up
  # The VPC router answers ARP for the subnet's other addresses, as AWS's
  # fabric does, so an instance reaches an ENI in its own subnet.
  ip netns exec "$VPC" sysctl -qw "net.ipv4.conf.sub-$s.proxy_arp=1"
  ip -n "$inst" addr replace "$p.10/24" dev eth0
  ip -n "$inst" link set eth0 mtu 8500 up
  ip -n "$inst" route replace default via "$p.1"
  # The instance asks the Amazon-provided DNS (VPC base + 2) like an EC2 instance does.
  mkdir -p "/etc/netns/$inst"
  echo "nameserver 10.0.0.2" > "/etc/netns/$inst/resolv.conf"
done

cat <<MSG
lab is up: namespaces $VPC, $P-a (10.0.1.10), $P-b (10.0.2.10)
next:  privlink up --config netns-scripts/lab.toml
then:  privlink standin &   # a loopback HTTPS stand-in for ec2.us-east-1.amazonaws.com on port 8443
       ip netns exec $P-a curl --cacert /tmp/privlink-standin-ec2.us-east-1.amazonaws.com-8443-ca.pem --resolve ec2.us-east-1.amazonaws.com:443:10.0.1.49 https://ec2.us-east-1.amazonaws.com/
MSG
