// The one version number of tmip's code: the daemons report it, the packages must agree with it
// (test/unit/version.test.ts checks package.json and the OpenWrt Makefiles against it).
export const VERSION = '0.1.0';
