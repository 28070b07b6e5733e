#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Bundles the daemons into single files with esbuild: dist/tmip-cn.js and dist/tmip-mlr.js.
# The packet-capture addon (cap) stays external: it is a native module installed beside Node.
# The banner gives the ESM bundle a `require` for the CommonJS packages inside it (MQTT.js and its
# dependencies require Node's built-ins such as 'stream').
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p dist
for prog in tmip-cn tmip-mlr; do
  npx --no-install esbuild "src/cli/${prog}.ts" --bundle --platform=node --target=node20 --format=esm \
    --external:cap --outfile="dist/${prog}.js" --log-level=warning \
    --banner:js="#!/usr/bin/env node
import { createRequire as __tmipRequire } from 'node:module'; const require = __tmipRequire(import.meta.url);"
  chmod 0755 "dist/${prog}.js"
done
echo "built: $(ls dist/*.js | tr '\n' ' ')"

# `bash build.sh ipk` also packs the bundles, init scripts, config and LuCI app into OpenWrt packages
# without the SDK: dist/tmip-cn_<version>-r1_all.ipk, tmip-mlr_... and luci-app-tmip_... (or into
# $IPK_OUTDIR). openwrt/README.md describes this and the feed for the SDK.
if [ "${1:-}" = ipk ]; then
  sh openwrt/build-ipk.sh "${IPK_OUTDIR:-dist}"
fi
