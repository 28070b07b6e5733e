// SPDX-License-Identifier: GPL-2.0-only
// tmip-packet's entry point: the compiled addon (packet.c says what it does).
'use strict';
module.exports = require('./build/Release/tmip_packet.node');
