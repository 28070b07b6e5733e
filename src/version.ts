// SPDX-License-Identifier: GPL-2.0-only
// The tmip release version, the one constant the code reads it from (start-up log lines, status
// replies). The same string is package.json's "version" and PKG_VERSION in the OpenWrt feed's own
// packages (openwrt/net/tmip/Makefile, openwrt/luci/luci-app-tmip/Makefile); openwrt/build-ipk.sh
// takes it from package.json. test/unit/version.test.ts fails when a bump misses one of them.
export const VERSION = '0.1.0';
