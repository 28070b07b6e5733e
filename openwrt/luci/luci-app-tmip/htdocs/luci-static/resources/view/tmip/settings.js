'use strict';
'require view';
'require form';
'require tools.widgets as widgets';
// SPDX-License-Identifier: GPL-2.0-only

/*
 * Settings of /etc/config/tmip: the correspondent node sections ('config cn') and, for the router that
 * runs the location register, the 'config mlr' section. Every check below accepts exactly what the
 * daemons' config reader (src/core/config.ts) accepts, so a value saved here never stops a daemon at
 * start-up. Saving and applying commits the config; procd then restarts the instances.
 */

var TUNNEL_TYPES = [ 'ipip', 'gre', 'vxlan' ];
var LEASE_TIME_MIN = 60, LEASE_TIME_MAX = 31536000;
var TUNNEL_PREFIX_MAX = 7;

/* An IPv4 address a.b.c.d as a number, or null. */
function parseIPv4(text) {
	var parts = String(text).split('.'), value = 0;

	if (parts.length !== 4)
		return null;

	for (var i = 0; i < 4; i++) {
		if (!/^\d{1,3}$/.test(parts[i]) || Number(parts[i]) > 255)
			return null;
		value = value * 256 + Number(parts[i]);
	}

	return value;
}

/* A prefix a.b.c.d/len as { network, prefix }, or null. */
function parseCidr(text) {
	var slash = text.indexOf('/'),
	    ip = (slash < 0) ? null : parseIPv4(text.slice(0, slash)),
	    len = (slash < 0) ? '' : text.slice(slash + 1);

	if (ip === null || !/^\d{1,2}$/.test(len) || Number(len) > 32)
		return null;

	var size = Math.pow(2, 32 - Number(len));
	return { network: ip - (ip % size), prefix: Number(len), size: size };
}

function cidrContains(cidr, ip) {
	return ip >= cidr.network && ip < cidr.network + cidr.size;
}

function byteLength(text) {
	try {
		return encodeURIComponent(text).replace(/%[0-9A-F]{2}/g, 'x').length;
	}
	catch (e) {
		return Infinity;
	}
}

/* A Linux network device name as the kernel accepts it: null if fine, else the problem. */
function ifnameProblem(text) {
	if (text === '' || text === '.' || text === '..')
		return _('Expecting a Linux interface name, e.g. "br-lan"');
	if (byteLength(text) > 15)
		return _('Interface names are at most 15 bytes long');
	if (/[\s/:\x00-\x1f\x7f]/.test(text))
		return _('Interface names contain no spaces, "/" or ":"');
	return null;
}

function isDnsName(text) {
	var name = (text.slice(-1) === '.') ? text.slice(0, -1) : text;

	if (name.length === 0 || name.length > 253)
		return false;

	return name.split('.').every(function(label) {
		return /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(label);
	});
}

function isPath(text) {
	return text.charAt(0) === '/' && !/[\x00-\x1f\x7f]/.test(text) && byteLength(text) <= 4095;
}

function integerIn(value, min, max) {
	return /^\d+$/.test(value) && Number(value) >= min && Number(value) <= max;
}

/* Validators: function(section_id, value) returning true or a message, as LuCI's form expects. */

function validateRequired(check) {
	return function(section_id, value) {
		if (value == null || value === '')
			return _('This option is required');
		return check(section_id, value);
	};
}

function validateOptional(check) {
	return function(section_id, value) {
		if (value == null || value === '')
			return true;
		return check(section_id, value);
	};
}

var validate = {
	/* 'host' or 'host:port': an IPv4 address or a DNS name, port 1..65535 (default 6554) */
	mlr: validateRequired(function(section_id, value) {
		var host = value, colon = value.lastIndexOf(':');

		if (colon >= 0) {
			var port = value.slice(colon + 1);
			host = value.slice(0, colon);
			if (host.indexOf(':') >= 0)
				return _('IPv6 addresses are not supported; expecting "host" or "host:port"');
			if (!integerIn(port, 1, 65535))
				return _('Expecting a port number 1..65535 after ":"');
		}

		if (host === '')
			return _('Expecting "host" or "host:port", e.g. "192.0.2.1:6554"');
		if (/^[0-9.]+$/.test(host))
			return (parseIPv4(host) !== null) || _('Expecting a valid IPv4 address');
		return isDnsName(host) || _('Expecting an IPv4 address or a DNS name');
	}),

	network_name: validateRequired(function(section_id, value) {
		return /^[\x21-\x7e]{1,64}$/.test(value) ||
			_('Expecting 1..64 printable characters without spaces');
	}),

	cn_name: validateOptional(function(section_id, value) {
		if (Array.from(value).length > 64)
			return _('At most 64 characters');
		return !/[\x00-\x1f\x7f]/.test(value) || _('No control characters');
	}),

	ifname: validateRequired(function(section_id, value) {
		return ifnameProblem(value) || true;
	}),

	/* '<interface or CIDR> <first|*> <last|*>' */
	addr_pool: validateOptional(function(section_id, value) {
		var words = value.trim().split(/\s+/), cidr = null, bounds = [];

		if (words.length !== 3)
			return _('Expecting "<interface or CIDR> <first|*> <last|*>", e.g. "br-lan * *" or "10.20.0.0/16 10.20.1.0 10.20.1.255"');

		if (words[0].indexOf('/') >= 0) {
			cidr = parseCidr(words[0]);
			if (cidr === null)
				return _('Expecting a subnet a.b.c.d/len or an interface name first');
			if (cidr.prefix > 30)
				return _('The subnet is too small for a /30 station cell (prefix length 30 or less)');
		}
		else if (/^[0-9.]+$/.test(words[0])) {
			return _('Expecting a subnet a.b.c.d/len or an interface name first, not an address');
		}
		else if (ifnameProblem(words[0]) !== null) {
			return ifnameProblem(words[0]);
		}

		for (var i = 1; i <= 2; i++) {
			if (words[i] === '*') {
				bounds.push(null);
				continue;
			}

			var ip = parseIPv4(words[i]);
			if (ip === null)
				return _('The first and last addresses are IPv4 addresses or "*"');
			if (cidr !== null && !cidrContains(cidr, ip))
				return _('The first and last addresses lie inside the subnet');
			bounds.push(ip);
		}

		if (bounds[0] !== null && bounds[1] !== null && bounds[0] > bounds[1])
			return _('The first address comes before the last one');

		return true;
	}),

	ipv4: validateOptional(function(section_id, value) {
		return (parseIPv4(value) !== null) || _('Expecting an IPv4 address a.b.c.d');
	}),

	domain: validateOptional(function(section_id, value) {
		return isDnsName(value) || _('Expecting a DNS domain, e.g. "campus.lan"');
	}),

	lease_time: validateOptional(function(section_id, value) {
		return integerIn(value, LEASE_TIME_MIN, LEASE_TIME_MAX) ||
			_('Expecting a number of seconds %d..%d').format(LEASE_TIME_MIN, LEASE_TIME_MAX);
	}),

	tunnel_prefix: validateOptional(function(section_id, value) {
		return new RegExp('^[a-z][a-z0-9_]{0,' + (TUNNEL_PREFIX_MAX - 1) + '}$').test(value) ||
			_('Expecting 1..%d characters of a-z, 0-9 and "_", starting with a letter').format(TUNNEL_PREFIX_MAX);
	}),

	tunnel_type: validateOptional(function(section_id, value) {
		return (TUNNEL_TYPES.indexOf(value) >= 0) ||
			_('Expecting one of %s').format(TUNNEL_TYPES.join(', '));
	}),

	path: validateOptional(function(section_id, value) {
		return isPath(value) || _('Expecting an absolute path');
	}),

	port: validateOptional(function(section_id, value) {
		return integerIn(value, 1, 65535) || _('Expecting a port number 1..65535');
	}),

	offer_hold: validateOptional(function(section_id, value) {
		return integerIn(value, 1, 3600) || _('Expecting a number of seconds 1..3600');
	}),

	lease_grace: validateOptional(function(section_id, value) {
		return integerIn(value, 0, 86400) || _('Expecting a number of seconds 0..86400');
	})
};

function debugLevels(o) {
	var names = [
		_('emergencies only'), _('alerts'), _('critical'), _('errors'),
		_('warnings'), _('notices'), _('informational'), _('debug')
	];

	for (var i = 0; i < names.length; i++)
		o.value(String(i), '%d – %s'.format(i, names[i]));

	o.default = '2';
}

function tunnelTypes(o) {
	for (var i = 0; i < TUNNEL_TYPES.length; i++)
		o.value(TUNNEL_TYPES[i]);

	o.placeholder = TUNNEL_TYPES.join(', ');
	o.validate = validate.tunnel_type;
}

return view.extend({
	render: function() {
		var m, s, o;

		m = new form.Map('tmip', _('Transparent Mobile IP'),
			_('Wireless clients keep their IPv4 address and open connections while roaming between access points on different routed subnets. Each access point runs a correspondent node (CN); one router of the network runs the mobile location register (MLR).'));

		s = m.section(form.TypedSection, 'cn', _('Correspondent nodes'),
			_('One section per tmip-cn instance. Tunnel prefixes must differ between instances of one router.'));
		s.anonymous = true;
		s.addremove = true;

		s.tab('general', _('General Settings'));
		s.tab('addresses', _('Addresses'));
		s.tab('tunnels', _('Tunnels'));
		s.tab('advanced', _('Advanced Settings'));

		o = s.taboption('general', form.Flag, 'enabled', _('Enable'),
			_('Run a correspondent node for this section.'));
		o.default = o.enabled;
		o.rmempty = false;

		o = s.taboption('general', form.Value, 'mlr', _('MLR address'),
			_('The location register as "host" or "host:port" (default port 6554).'));
		o.placeholder = '192.0.2.1:6554';
		o.rmempty = false;
		o.validate = validate.mlr;

		o = s.taboption('general', form.Value, 'network_name', _('Network name'),
			_('Identical on every CN and on the MLR.'));
		o.placeholder = 'tmip';
		o.rmempty = false;
		o.validate = validate.network_name;

		o = s.taboption('general', form.Value, 'cn_name', _('CN name'),
			_('This CN in logs and status; unique in the network. Default: the section name, else "cn".'));
		o.validate = validate.cn_name;

		o = s.taboption('general', widgets.DeviceSelect, 'cn_if', _('Backbone interface'),
			_('The Linux device towards the routed backbone (other CNs and the MLR).'));
		o.noaliases = true;
		o.rmempty = false;
		o.validate = validate.ifname;

		o = s.taboption('general', widgets.DeviceSelect, 'mobile_if', _('Mobile interface'),
			_('The Linux device the wireless clients are on, usually the Wi-Fi bridge; may equal the backbone interface.'));
		o.noaliases = true;
		o.rmempty = false;
		o.validate = validate.ifname;

		o = s.taboption('addresses', form.DynamicList, 'addr_pool', _('Address pools'),
			_('"<interface or subnet> <first|*> <last|*>": hands out the whole /30 cells of the interface\'s subnet or of a subnet a.b.c.d/len, narrowed to first..last. Without a pool the CN borrows cells from other CNs.'));
		o.placeholder = 'br-lan * *';
		o.validate = validate.addr_pool;

		o = s.taboption('addresses', form.DynamicList, 'dns_server', _('DNS servers'),
			_('IPv4 DNS servers offered to the clients.'));
		o.placeholder = '192.0.2.53';
		o.validate = validate.ipv4;

		o = s.taboption('addresses', form.Value, 'domain', _('DNS domain'),
			_('Domain offered to the clients (optional).'));
		o.placeholder = 'lan';
		o.validate = validate.domain;

		o = s.taboption('addresses', form.Value, 'lease_time', _('Lease time'),
			_('Address lease time in seconds (%d..%d).').format(LEASE_TIME_MIN, LEASE_TIME_MAX));
		o.placeholder = '3600';
		o.validate = validate.lease_time;

		o = s.taboption('tunnels', form.Value, 'tunnel_prefix', _('Tunnel device prefix'),
			_('Names this CN\'s tunnel devices (prefix + pair id); a letter, then a-z, 0-9 or "_", at most %d characters.').format(TUNNEL_PREFIX_MAX));
		o.placeholder = 'tmip0';
		o.validate = validate.tunnel_prefix;

		o = s.taboption('tunnels', form.DynamicList, 'tunnel_type', _('Tunnel types'),
			_('Encapsulations this CN accepts, most preferred first. Empty: all of them.'));
		tunnelTypes(o);

		o = s.taboption('tunnels', form.Flag, 'mss_clamp', _('Clamp TCP MSS'),
			_('Lower the TCP MSS of tunnelled clients so that roamed sessions never need fragmentation.'));
		o.default = o.enabled;
		o.rmempty = false;

		o = s.taboption('advanced', form.ListValue, 'debug_level', _('Log level'));
		debugLevels(o);

		o = s.taboption('advanced', form.Flag, 'hostapd', _('Use hostapd events'),
			_('Learn associations from hostapd over ubus when it is running.'));
		o.default = o.enabled;
		o.rmempty = false;

		o = s.taboption('advanced', form.Flag, 'require_association', _('Require association'),
			_('With hostapd events, move a client here on its traffic only when it is associated to this access point.'));
		o.default = o.enabled;
		o.rmempty = false;

		o = s.taboption('advanced', form.Value, 'ubus_socket', _('ubus socket'),
			_('Path of the ubusd socket; default /var/run/ubus/ubus.sock, then /var/run/ubus.sock.'));
		o.placeholder = '/var/run/ubus/ubus.sock';
		o.validate = validate.path;

		o = s.taboption('advanced', form.Value, 'status_file', _('Status file'),
			_('File where the CN writes its current state (optional).'));
		o.placeholder = '/var/run/tmip/cn.status';
		o.validate = validate.path;

		s = m.section(form.TypedSection, 'mlr', _('Mobile location register'),
			_('Only on the one router that runs the MLR (package tmip-mlr).'));
		s.anonymous = true;
		s.addremove = true;

		o = s.option(form.Flag, 'enabled', _('Enable'), _('Run the MLR on this router.'));
		o.default = o.enabled;
		o.rmempty = false;

		o = s.option(form.Value, 'network_name', _('Network name'),
			_('Identical to the CNs\' network name.'));
		o.placeholder = 'tmip';
		o.rmempty = false;
		o.validate = validate.network_name;

		o = s.option(form.Value, 'port', _('Port'), _('TCP port the CNs connect to.'));
		o.placeholder = '6554';
		o.validate = validate.port;

		o = s.option(form.Value, 'listen', _('Listen address'),
			_('IPv4 address to listen on; 0.0.0.0 for all.'));
		o.placeholder = '0.0.0.0';
		o.validate = validate.ipv4;

		o = s.option(form.Value, 'state_file', _('State file'),
			_('File where bindings persist across restarts (optional; each change is written to it).'));
		o.placeholder = '/etc/tmip/mlr.state';
		o.validate = validate.path;

		o = s.option(form.Value, 'offer_hold', _('Offer hold time'),
			_('Seconds an address offered to a client is held before it returns to the pool (1..3600).'));
		o.placeholder = '60';
		o.validate = validate.offer_hold;

		o = s.option(form.Value, 'lease_grace', _('Lease grace time'),
			_('Seconds a binding outlives its lease before it is reclaimed (0..86400).'));
		o.placeholder = '60';
		o.validate = validate.lease_grace;

		o = s.option(form.DynamicList, 'tunnel_type', _('Tunnel types'),
			_('Order of preference when agreeing on a tunnel type for a pair of CNs. Empty: all of them.'));
		tunnelTypes(o);

		o = s.option(form.ListValue, 'debug_level', _('Log level'));
		debugLevels(o);

		return m.render();
	}
});
