#!/usr/bin/env bash
# Bundles the daemons into single files with esbuild: dist/tmip-cn.js and dist/tmip-mlr.js.
# The packet-capture addon (cap) stays external: it is a native module installed beside Node.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p dist
for prog in tmip-cn tmip-mlr; do
  npx --no-install esbuild "src/cli/${prog}.ts" --bundle --platform=node --target=node20 --format=esm \
    --external:cap --outfile="dist/${prog}.js" --log-level=warning \
    --banner:js="#!/usr/bin/env node"
  chmod 0755 "dist/${prog}.js"
done
echo "built: $(ls dist/*.js | tr '\n' ' ')"
