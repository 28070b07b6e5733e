'use strict';
'require view';
'require dom';
'require poll';
'require rpc';
'require ui';
// SPDX-License-Identifier: GPL-2.0-only

/*
 * Live state of the correspondent node from its ubus object 'tmip' (published by tmip-cn):
 *   status  -> { cn_name, network_name, address, cn_if, mobile_if, mlr: { address, connected },
 *                pools: [...], tunnel_types: [...], clients_here, hostapd: { enabled, present, bss: [...] } }
 *              (or the same wrapped as { status: {...} })
 *   clients -> { clients: [ { mac, ip, parent, current, here, associated, expires } ] }
 *              (expires: seconds left of the client's DHCP lease, or a Unix time; the CN takes the MLR's
 *              lease_grace off the binding's end, which it learns when it binds)
 *   tunnels -> { tunnels: [ { name, type, peer, key, mtu } ] }
 *   peers   -> { peers: [ { name, addr, online } ] }
 *   reload  -> the button below
 * Fields a reply lacks show as '-'. Polled every 5 seconds.
 *
 * Everything these replies hold may be chosen by a stranger: a CN name or peer name registered at an
 * MLR with auth off, a pool text, a BSS name. It must reach the page as text, never as markup, and
 * LuCI's helpers do not do that for a bare string: dom.append() (luci.js, under E(), dom.content() and
 * ui.addNotification()) makes text nodes of the items of an ARRAY, but assigns a lone string child to
 * innerHTML; and cbi_update_table() (ui.Table.update) builds every cell as E('td', {...}, cell), so a
 * string cell is markup as well. Hence the rule of this file: every string child of E() or
 * dom.content() is passed inside an array, and every table cell is a DOM text node (cell() below).
 * Translated texts follow the same rule, so that a value .format()ted into them stays text too.
 */

var callStatus = rpc.declare({ object: 'tmip', method: 'status', reject: true });
var callClients = rpc.declare({ object: 'tmip', method: 'clients', expect: { clients: [] }, reject: true });
var callTunnels = rpc.declare({ object: 'tmip', method: 'tunnels', expect: { tunnels: [] }, reject: true });
var callPeers = rpc.declare({ object: 'tmip', method: 'peers', expect: { peers: [] }, reject: true });
var callReload = rpc.declare({ object: 'tmip', method: 'reload', reject: true });

function text(value) {
	if (value == null || value === '')
		return '-';
	if (typeof value === 'object')
		return (value.text != null) ? String(value.text) : JSON.stringify(value);
	return String(value);
}

/* A table cell as a text node: cbi_update_table() would parse a string cell as HTML. */
function cell(value) {
	return document.createTextNode(value);
}

function list(values) {
	return (Array.isArray(values) && values.length) ? values.map(text).join(', ') : '-';
}

function yesNo(value) {
	if (value === true)
		return _('yes');
	if (value === false)
		return _('no');
	return text(value);
}

/* 'expires': seconds left, or a Unix time (anything past 2001) */
function expiry(value) {
	var left = Number(value);

	if (value == null || value === '' || isNaN(left))
		return '-';
	if (left > 1e9)
		left = left - Math.floor(Date.now() / 1000);
	if (left <= 0)
		return _('expired');

	return '%t'.format(Math.floor(left));
}

/* The hostapd row: off, in use (with the BSSes it watches), or not running. */
function hostapdText(hostapd) {
	if (!hostapd || typeof hostapd !== 'object')
		return '-';
	if (!hostapd.enabled)
		return _('off');
	if (!hostapd.present)
		return _('hostapd not running');
	return (Array.isArray(hostapd.bss) && hostapd.bss.length)
		? _('in use (%s)').format(list(hostapd.bss)) : _('in use');
}

/* The capture on the clients' interface (status.capture): numbers only, or a state in words. */
function captureText(capture) {
	if (!capture || typeof capture !== 'object')
		return '-';
	if (capture.interface_gone)
		return _('the interface is gone: its clients are unreachable until it is back');
	if (capture.stopped)
		return _('stopped; it is being opened again');
	var s = _('%d frames received, %d dropped').format(+capture.received || 0, +capture.dropped || 0);
	if (+capture.reopened > 0)
		s += ', ' + _('opened again: %d').format(+capture.reopened);
	return s;
}

function fetchAll() {
	function settle(promise) {
		return promise.then(function(value) {
			return { value: value };
		}, function(err) {
			return { error: err };
		});
	}

	return Promise.all([
		settle(callStatus()), settle(callClients()), settle(callTunnels()), settle(callPeers())
	]);
}

function table(titles) {
	return E('table', { 'class': 'table' }, [
		E('tr', { 'class': 'tr table-titles' }, titles.map(function(title) {
			return E('th', { 'class': 'th' }, [ title ]);
		}))
	]);
}

return view.extend({
	load: function() {
		return fetchAll();
	},

	update: function(nodes, results) {
		var status = results[0], clients = results[1], tunnels = results[2], peers = results[3];
		var st = status.value || {};

		if (st.status != null && typeof st.status === 'object')
			st = st.status;

		var mlr = st.mlr || {}, hostapd = st.hostapd;

		if (status.error) {
			dom.content(nodes.notice, E('p', {}, [
				E('em', {}, [ _('The correspondent node is not running or not reachable over ubus (%s). Start it with /etc/init.d/tmip-cn start; see logread -e tmip-cn. On a router that runs only the location register (tmip-mlr without tmip-cn) there is nothing to show here: the MLR is set up on the Settings page, and logread -e tmip-mlr shows its log.')
					.format(status.error.message || status.error) ])
			]));
			nodes.notice.style.display = '';
		}
		else {
			dom.content(nodes.notice, []);
			nodes.notice.style.display = 'none';
		}

		dom.content(nodes.status, [
			[ _('CN name'), text(st.cn_name) ],
			[ _('Network name'), text(st.network_name) ],
			[ _('Backbone address'), text(st.address) ],
			[ _('Interfaces'), (st.cn_if || st.mobile_if) ? _('backbone %s, clients %s').format(text(st.cn_if), text(st.mobile_if)) : '-' ],
			[ _('MLR'), text(mlr.address) ],
			[ _('MLR connection'), status.error ? '-' : (mlr.connected ? _('connected') : _('not connected')) ],
			[ _('Address pools'), list(st.pools) ],
			[ _('Tunnel types'), list(st.tunnel_types) ],
			[ _('Clients here'), text(st.clients_here) ],
			[ _('hostapd events'), hostapdText(hostapd) ],
			[ _('Capture'), captureText(st.capture) ]
		].map(function(row) {
			return E('tr', { 'class': 'tr' }, [
				E('td', { 'class': 'td left', 'width': '33%' }, [ row[0] ]),
				E('td', { 'class': 'td left' }, [ row[1] ])
			]);
		}));

		cbi_update_table(nodes.clients, (Array.isArray(clients.value) ? clients.value : []).map(function(c) {
			return [ text(c.mac), text(c.ip), text(c.parent), text(c.current), yesNo(c.here), yesNo(c.associated), expiry(c.expires) ].map(cell);
		}), E('em', {}, [ _('No clients') ]));

		cbi_update_table(nodes.tunnels, (Array.isArray(tunnels.value) ? tunnels.value : []).map(function(t) {
			return [ text(t.name), text(t.type), text(t.peer), text(t.key), text(t.mtu) ].map(cell);
		}), E('em', {}, [ _('No tunnels') ]));

		cbi_update_table(nodes.peers, (Array.isArray(peers.value) ? peers.value : []).map(function(p) {
			return [ text(p.name), text(p.addr), yesNo(p.online) ].map(cell);
		}), E('em', {}, [ _('No peer CNs known') ]));
	},

	handleReload: function() {
		return callReload().then(function() {
			ui.addNotification(null, E('p', {}, [ _('The correspondent node is reloading.') ]), 'info');
		}, function(err) {
			ui.addNotification(null, E('p', {}, [ _('Reload failed: %s').format((err && err.message) || err) ]), 'error');
		});
	},

	render: function(results) {
		var nodes = {
			notice: E('div', { 'class': 'alert-message warning', 'style': 'display:none' }),
			status: E('table', { 'class': 'table' }),
			clients: table([ _('MAC address'), _('IPv4 address'), _('Parent CN'), _('Current CN'), _('Here'), _('Associated'), _('Lease expires in') ]),
			tunnels: table([ _('Device'), _('Type'), _('Peer'), _('Key'), _('MTU') ]),
			peers: table([ _('CN'), _('Address'), _('Online') ])
		};

		this.update(nodes, results);

		poll.add(L.bind(function() {
			return fetchAll().then(L.bind(this.update, this, nodes));
		}, this), 5);

		return E([], [
			E('h2', {}, [ _('Transparent Mobile IP') ]),
			E('div', { 'class': 'cbi-map-descr' },
				[ _('Clients of this access point, the tunnels to other correspondent nodes and the connection to the location register.') ]),
			nodes.notice,
			E('div', { 'class': 'cbi-section' }, [
				E('h3', {}, [ _('Correspondent node') ]),
				nodes.status,
				E('div', { 'class': 'right' }, [
					E('button', {
						'class': 'cbi-button cbi-button-action',
						'click': ui.createHandlerFn(this, 'handleReload')
					}, [ _('Reload') ])
				])
			]),
			E('div', { 'class': 'cbi-section' }, [ E('h3', {}, [ _('Clients') ]), nodes.clients ]),
			E('div', { 'class': 'cbi-section' }, [ E('h3', {}, [ _('Tunnels') ]), nodes.tunnels ]),
			E('div', { 'class': 'cbi-section' }, [ E('h3', {}, [ _('Peer CNs') ]), nodes.peers ])
		]);
	},

	handleSave: null,
	handleSaveApply: null,
	handleReset: null
});
