#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Bundles the daemons into single files with esbuild: dist/tmip-cn.js and dist/tmip-mlr.js.
# The packet-capture addon (tmip-packet, native/packet) stays external: it is a native module installed
# beside Node.
# The banner gives the ESM bundle a `require` for the CommonJS packages inside it (MQTT.js and its
# dependencies require Node's built-ins such as 'stream').
# Memory (a CN should stay under 50 MB RSS on a router; bench/dhcp --memory): V8 keeps a script's whole
# source text in its heap for as long as the script runs, one byte per character only if every character
# is ASCII. --minify-whitespace drops comments and indentation and --charset=ascii escapes non-ASCII
# characters in strings: the CN's bundle goes from 1.2 MB kept as a 2.4 MB two-byte string (non-ASCII
# characters in a few comments were enough) to about 0.77 MB, one byte each (about 1.5 MB less RSS).
# Identifiers are not minified, so error logs' stack traces keep function and class names (--keep-names
# is not needed); their line:column point into long lines. The build fails if a non-ASCII character is
# left (a legal comment is kept as written).
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p dist
for prog in tmip-cn tmip-mlr; do
  npx --no-install esbuild "src/cli/${prog}.ts" --bundle --platform=node --target=node20 --format=esm \
    --external:tmip-packet --outfile="dist/${prog}.js" --log-level=warning --minify-whitespace --charset=ascii \
    --banner:js="#!/usr/bin/env node
import { createRequire as __tmipRequire } from 'node:module'; const require = __tmipRequire(import.meta.url);"
  node -e 'const f = process.argv[1]; const i = require("fs").readFileSync(f).findIndex((b) => b > 0x7f);
    if (i >= 0) { console.error(f + ": a non-ASCII byte at offset " + i + " (V8 would keep the source two bytes a character)"); process.exit(1); }' "dist/${prog}.js"
  chmod 0755 "dist/${prog}.js"
done
echo "built: $(ls dist/*.js | tr '\n' ' ')"

# `bash build.sh ipk` also packs the bundles, init scripts, config and LuCI app into OpenWrt packages
# without the SDK: dist/tmip-cn_<version>-r1_all.ipk, tmip-mlr_... and luci-app-tmip_... (or into
# $IPK_OUTDIR). openwrt/README.md describes this and the feed for the SDK.
if [ "${1:-}" = ipk ]; then
  sh openwrt/build-ipk.sh "${IPK_OUTDIR:-dist}"
fi
