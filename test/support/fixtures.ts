// SPDX-License-Identifier: GPL-2.0-only
// Captured-format packets shared by several tests.
import { hex } from './helpers.js';

/** MAC of the client in the udhcpc fixture. */
export const UDHCPC_MAC = '02:00:00:aa:bb:01';

/**
 * busybox udhcpc 1.35.0 DHCPDISCOVER (udhcpc -x hostname:OpenWrt): options 53, 61 (01+MAC), 57 (576),
 * 55 (1 3 6 12 15 28 42), 60 "udhcp 1.35.0", 12; padded to 300 bytes.
 */
export const UDHCPC_DISCOVER = hex(
  '01010600 3903f326 0000 0000 00000000 00000000 00000000 00000000' +
    '020000aabb01 00000000000000000000' +
    '00'.repeat(64 + 128) + // sname, file
    '63825363' + // magic cookie
    '350101' +
    '3d0701020000aabb01' +
    '39020240' +
    '3707010306 0c0f1c2a' +
    '3c0c 756468637020312e33352e30' +
    '0c07 4f70656e577274' +
    'ff' +
    '00'.repeat(11),
);
