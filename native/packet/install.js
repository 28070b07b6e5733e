// SPDX-License-Identifier: GPL-2.0-only
// npm's install step for tmip-packet: `node-gyp rebuild`, against the running Node's own headers when
// it has them (<prefix>/include/node, as Debian's and the official builds install), so the build
// needs no download; an explicit npm_config_nodedir (the OpenWrt cross-build's staged headers) wins.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const args = ['rebuild'];
if (!process.env.npm_config_nodedir) {
  const prefix = path.resolve(process.execPath, '../..');
  // node-gyp needs the headers and the build's common.gypi; otherwise let it download them.
  const inc = path.join(prefix, 'include/node');
  if (fs.existsSync(path.join(inc, 'node_api.h')) && fs.existsSync(path.join(inc, 'common.gypi'))) args.push(`--nodedir=${prefix}`);
}
// npm names its bundled node-gyp in npm_config_node_gyp; otherwise node-gyp on PATH
const gyp = process.env.npm_config_node_gyp;
const r = gyp ? spawnSync(process.execPath, [gyp, ...args], { stdio: 'inherit' }) : spawnSync('node-gyp', args, { stdio: 'inherit' });
if (r.error) console.error(`tmip-packet: cannot run node-gyp: ${r.error.message}`);
process.exit(r.status ?? 1);
