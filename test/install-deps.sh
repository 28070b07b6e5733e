#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Installs what the build and the tests need on a Debian machine (run as root): the lab's tools
# (iproute2, nftables, real DHCP clients, ping, tcpdump, the mosquitto MQTT broker), a C compiler,
# make and python3 for node-gyp (npm ci builds our packet capture addon, native/packet), openssl
# (the TLS tests make their certificates with it), etcd-server (the MLR high-availability tests run a
# 3-member etcd on loopback addresses), and the npm dependencies. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
need=(iproute2 nftables busybox isc-dhcp-client iputils-ping tcpdump procps make g++ python3 shellcheck mosquitto openssl etcd-server)
missing=()
for p in "${need[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
