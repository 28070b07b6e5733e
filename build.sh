#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Bundles the daemons into single files with esbuild: dist/tmip-cn.cjs and dist/tmip-mlr.cjs.
# The packet-capture addon (tmip-packet, native/packet) stays external: it is a native module installed
# beside Node.
# Memory (a CN should stay under 50 MB RSS on a router with 250 clients; bench/dhcp --memory,
# openwrt/README.md "Memory"):
# - CommonJS, not an ES module: the source is ESM, but Node runs an ES module through its ESM loader,
#   about 2.7 MB more RSS than the same code as CommonJS (an empty script with the CN's flags: 41.4
#   against 38.7 MB). The banner's "use strict" keeps ESM's strict mode; import.meta.url, which two
#   modules use to find node:tls and the capture addon, becomes the bundle's own file URL.
# - V8 keeps a script's whole source text in its heap for as long as the script runs, one byte per
#   character only if every character is ASCII. --minify-whitespace drops comments and indentation and
#   --charset=ascii escapes non-ASCII characters in strings; the build fails if a non-ASCII byte is left
#   (a legal comment is kept as written). Identifiers are not minified, so error logs' stack traces keep
#   function and class names (--keep-names is not needed); their line:column point into long lines.
# - MQTT.js and its dependencies (about 550 kB, 70 % of a bundle) go into a CommonJS module of their own
#   beside each bundle, dist/<prog>-mqtt.cjs, which the daemon loads only when its transport is MQTT
#   (platform/mqtt-channel.ts): a CN on TCP keeps none of that source in its heap (about 1 MB less RSS).
#   The source's `import('mqtt')` becomes a require() of it (--supported:dynamic-import=false), so an
#   MQTT CN does not start the ESM loader either. It exports what the daemons use, `MqttClient` (they
#   open the broker's socket themselves: mqtt.connect() would load MQTT.js's WebSocket transport and
#   more); its name carries the program's so that tmip-cn and tmip-mlr, two packages, never ship the
#   same file.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p dist
ascii_only() {
  node -e 'const f = process.argv[1]; const i = require("fs").readFileSync(f).findIndex((b) => b > 0x7f);
    if (i >= 0) { console.error(f + ": a non-ASCII byte at offset " + i + " (V8 would keep the source two bytes a character)"); process.exit(1); }' "$1"
}
# The MQTT module is the same for both daemons: built once, copied under tmip-mlr's name.
npx --no-install esbuild --bundle --platform=node --target=node20 --format=cjs --outfile=dist/tmip-cn-mqtt.cjs \
  --log-level=warning --minify-whitespace --charset=ascii <<<"export { MqttClient } from 'mqtt';"
ascii_only dist/tmip-cn-mqtt.cjs
cp dist/tmip-cn-mqtt.cjs dist/tmip-mlr-mqtt.cjs
for prog in tmip-cn tmip-mlr; do
  npx --no-install esbuild "src/cli/${prog}.ts" --bundle --platform=node --target=node20 --format=cjs \
    --external:tmip-packet --alias:mqtt="./${prog}-mqtt.cjs" --external:"./${prog}-mqtt.cjs" \
    --supported:dynamic-import=false --define:import.meta.url=__tmipModuleUrl --outfile="dist/${prog}.cjs" \
    --log-level=warning --minify-whitespace --charset=ascii --banner:js="#!/usr/bin/env node
\"use strict\";const __tmipModuleUrl=require(\"node:url\").pathToFileURL(__filename).href;"
  ascii_only "dist/${prog}.cjs"
  chmod 0755 "dist/${prog}.cjs"
done
echo "built: $(ls dist/*.cjs | tr '\n' ' ')"

# `bash build.sh ipk` also packs the bundles, init scripts, config and LuCI app into OpenWrt packages
# without the SDK: dist/tmip-cn_<version>-r1_all.ipk, tmip-mlr_... and luci-app-tmip_... (or into
# $IPK_OUTDIR). openwrt/README.md describes this and the feed for the SDK.
if [ "${1:-}" = ipk ]; then
  sh openwrt/build-ipk.sh "${IPK_OUTDIR:-dist}"
fi
