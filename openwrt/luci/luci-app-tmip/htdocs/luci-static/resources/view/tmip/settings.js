'use strict';
'require view';
'require form';
'require tools.widgets as widgets';
// SPDX-License-Identifier: GPL-2.0-only

/*
 * Settings of /etc/config/tmip: the correspondent node sections ('config cn') and, for the router that
 * runs the location register, the 'config mlr' section and its CN keys ('config key'). Every check
 * below accepts exactly what the daemons' config reader (src/core/config.ts) accepts, so a value saved
 * here never stops a daemon at start-up. Saving and applying commits the config; procd then restarts
 * the instances.
 *
 * Titles and help texts are markup to LuCI (form.js hands them to E() as a bare string, which
 * dom.append() assigns to innerHTML): a literal '<', '>' or '&' in them is written as an entity.
 * Configured values never go through them; LuCI shows those in input fields.
 */

var TUNNEL_TYPES = [ 'ipip', 'gre', 'vxlan' ];
var LEASE_TIME_MIN = 60, LEASE_TIME_MAX = 31536000;
var TUNNEL_PREFIX_MAX = 7;
/* Transports of the MLR address (config.ts DEFAULT_PORTS): scheme -> default port */
var MLR_SCHEMES = { tcp: 6554, tls: 6555, mqtt: 1883, mqtts: 8883 };
/* config.ts CN_NAME_RE: letters, digits, space and . _ - :, 1..64, no space first or last */
var CN_NAME_RE = /^[A-Za-z0-9._:-](?:[A-Za-z0-9 ._:-]{0,62}[A-Za-z0-9._:-])?$/;
/* config.ts parseSecret: a 32-byte key as 64 hex digits */
var SECRET_RE = /^[0-9A-Fa-f]{64}$/;
/* config.ts NETWORK_RE: a logical interface of /etc/config/network (cn_network, mobile_network) */
var NETWORK_RE = /^[A-Za-z0-9_]{1,15}$/;
/* The daemons' log levels (src/platform/log.ts), 0..7 */
var LOG_LEVELS = [
	'nothing', 'errors', 'start-up and state changes', 'each handover step',
	'detection (associations, traffic of arriving clients)', 'every protocol message', 'debugging', 'debugging, all of it'
];

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

function isEmpty(value) {
	return value == null || value === '';
}

/*
 * An MLR address as config.ts's parseMlrAddress reads it: 'host', 'host:port', or scheme://host[:port]
 * (one '/' may follow) with a scheme of MLR_SCHEMES. Null if fine, else the problem.
 */
function mlrAddressProblem(value) {
	var rest = value, url = /^([a-z]+):\/\/(.*)$/.exec(value);

	if (url) {
		if (!Object.prototype.hasOwnProperty.call(MLR_SCHEMES, url[1]))
			return _('Unknown scheme "%s"; expecting tcp://, tls://, mqtt:// or mqtts://').format(url[1]);
		rest = (url[2].slice(-1) === '/') ? url[2].slice(0, -1) : url[2];
	}

	var host = rest, colon = rest.lastIndexOf(':');

	if (colon >= 0) {
		host = rest.slice(0, colon);
		if (host.indexOf(':') >= 0)
			return _('IPv6 addresses are not supported; expecting "host" or "host:port"');
		if (!/^\d{1,5}$/.test(rest.slice(colon + 1)) || !integerIn(rest.slice(colon + 1), 1, 65535))
			return _('Expecting a port number 1..65535 after ":"');
	}

	if (host === '')
		return _('Expecting "host", "host:port" or a URL such as "mqtts://broker.lan", e.g. "192.0.2.1:6554"');
	if (/^[0-9.]+$/.test(host))
		return (parseIPv4(host) !== null) ? null : _('Expecting a valid IPv4 address');
	return isDnsName(host) ? null : _('Expecting an IPv4 address or a DNS name');
}

/* What the form holds for another option of the same section (its saved value before that renders). */
function fieldValue(option, section_id, name) {
	var section = option.section, value = null;

	if (section && typeof section.formvalue === 'function')
		value = section.formvalue(section_id, name);
	if (value == null && section && typeof section.cfgvalue === 'function')
		value = section.cfgvalue(section_id, name);

	return (value == null) ? '' : String(value);
}

/*
 * Validate another option of the section again (the two halves of a certificate/key pair, a port that
 * needs them): LuCI validates a field only when it changes, which would leave the other one's verdict
 * stale. Guarded, since that other option's check comes back here.
 */
var revalidating = false;

function revalidate(option, section_id, names) {
	var section = option.section;

	if (revalidating || !section || typeof section.getUIElement !== 'function')
		return;

	revalidating = true;
	try {
		names.forEach(function(name) {
			var widget = section.getUIElement(section_id, name);
			if (widget && typeof widget.triggerValidation === 'function')
				widget.triggerValidation();
		});
	}
	finally {
		revalidating = false;
	}
}

/*
 * Validators: function(section_id, value) returning true or a message, as LuCI's form expects; LuCI
 * calls them with the option as `this` (form.js binds validate to it).
 */

function validateRequired(check) {
	return function(section_id, value) {
		if (value == null || value === '')
			return _('This option is required');
		return check.call(this, section_id, value);
	};
}

function validateOptional(check) {
	return function(section_id, value) {
		if (value == null || value === '')
			return true;
		return check.call(this, section_id, value);
	};
}

/* An optional whole number min..max (config.ts r.integer); `message` when it is not. */
function validateInteger(min, max, message) {
	return validateOptional(function(section_id, value) {
		return integerIn(value, min, max) || message;
	});
}

/*
 * A TLS certificate or key path (tls_cert, tls_key): an absolute path, and set together with its
 * partner (config.ts tlsFiles: each needs the other).
 */
function validatePairedPath(partner) {
	return function(section_id, value) {
		var other = fieldValue(this, section_id, partner);

		revalidate(this, section_id, [ partner, 'tls_port' ]);

		if (isEmpty(value))
			return isEmpty(other) || _('Required with %s (a certificate and its key go together)').format(partner);
		if (!isPath(value))
			return _('Expecting an absolute path');
		return !isEmpty(other) || _('Needs %s too (a certificate and its key go together)').format(partner);
	};
}

/*
 * One side of a CN (kind 'cn': the backbone, 'mobile': the clients): a device (<kind>_if) or a logical
 * interface of /etc/config/network (<kind>_network), exactly one of them (config.ts side()).
 */
function validateSide(kind, network) {
	var own = kind + (network ? '_network' : '_if'), partner = kind + (network ? '_if' : '_network');

	return function(section_id, value) {
		var other = fieldValue(this, section_id, partner);

		revalidate(this, section_id, [ partner ]);

		if (isEmpty(value))
			return isEmpty(other) ? _('Set a device (%s) or a logical interface (%s)').format(kind + '_if', kind + '_network') : true;
		if (!isEmpty(other))
			return _('Set either %s or %s, not both').format(own, partner);
		if (network)
			return NETWORK_RE.test(value) || _('Expecting a logical interface name: 1..15 letters, digits and "_", e.g. "wan"');
		return ifnameProblem(value) || true;
	};
}

var validate = {
	/* 'host', 'host:port' (MLRP over TCP, default port 6554) or tcp://, tls://, mqtt://, mqtts://host[:port] */
	mlr: validateRequired(function(section_id, value) {
		return mlrAddressProblem(value) || true;
	}),

	/* the MLR's etcd store (config.ts / etcd-keys.ts parseStoreUrl): etcd://host[:port][,host[:port]...], not with state_file */
	store: validateOptional(function(section_id, value) {
		var m = /^etcd:\/\/(.+?)\/?$/.exec(value), seen = {};

		if (!m)
			return _('Expecting "etcd://host[:port][,host[:port]...]", e.g. "etcd://10.0.0.1:2379,10.0.0.2:2379,10.0.0.3:2379"');
		var parts = m[1].split(',');
		for (var i = 0; i < parts.length; i++) {
			var hp = /^([A-Za-z0-9.-]+)(?::(\d{1,5}))?$/.exec(parts[i].trim());
			if (!hp)
				return _('Expecting host[:port] between the commas');
			if (hp[2] != null && !integerIn(hp[2], 1, 65535))
				return _('Expecting a port number 1..65535 after ":"');
			if (/^[0-9.]+$/.test(hp[1]) && parseIPv4(hp[1]) === null)
				return _('Expecting a valid IPv4 address');
			var url = hp[1] + ':' + (hp[2] || '2379');
			if (seen[url])
				return _('%s is listed twice').format(url);
			seen[url] = true;
		}
		return isEmpty(fieldValue(this, section_id, 'state_file')) || _('Set either a state file or a shared store, not both');
	}),

	/* the MLR's broker: mqtt:// or mqtts://host[:port] */
	mqtt: validateOptional(function(section_id, value) {
		var problem = mlrAddressProblem(value);

		if (problem)
			return problem;
		return /^mqtts?:\/\//.test(value) || _('Expecting an MQTT broker URL, "mqtt://host[:port]" or "mqtts://host[:port]"');
	}),

	network_name: validateRequired(function(section_id, value) {
		return /^[\x21-\x7e]{1,64}$/.test(value) ||
			_('Expecting 1..64 printable characters without spaces');
	}),

	cn_name: validateOptional(function(section_id, value) {
		return CN_NAME_RE.test(value) ||
			_('Expecting 1..64 letters, digits, spaces and . _ - : (no space first or last), e.g. "Library 2nd floor"');
	}),

	/* 'config key' cn: a CN name, one key per CN (the daemon refuses the later duplicates) */
	key_cn: validateRequired(function(section_id, value) {
		var section = this.section, sids = (section && typeof section.cfgsections === 'function') ? section.cfgsections() : [];

		if (!CN_NAME_RE.test(value))
			return _('Expecting the CN\'s name: 1..64 letters, digits, spaces and . _ - : (no space first or last)');

		for (var i = 0; i < sids.length && sids[i] !== section_id; i++)
			if (fieldValue(this, sids[i], 'cn') === value)
				return _('This CN has a key already; one key per CN');

		return true;
	}),

	secret: validateOptional(function(section_id, value) {
		return SECRET_RE.test(value) || _('Expecting 64 hex digits, as "tmip-mlr keygen NAME" prints them');
	}),

	key_secret: validateRequired(function(section_id, value) {
		return SECRET_RE.test(value) || _('Expecting 64 hex digits, as "tmip-mlr keygen NAME" prints them');
	}),

	tls_cert: validatePairedPath('tls_key'),
	tls_key: validatePairedPath('tls_cert'),

	/* the MLR's TLS port: a port, and only with a certificate and key */
	tls_port: validateOptional(function(section_id, value) {
		if (!integerIn(value, 1, 65535))
			return _('Expecting a port number 1..65535');
		if (isEmpty(fieldValue(this, section_id, 'tls_cert')) || isEmpty(fieldValue(this, section_id, 'tls_key')))
			return _('Needs a TLS certificate and key (below)');
		return true;
	}),

	/* each side of a CN is a device (cn_if, mobile_if) or a logical interface (cn_network, mobile_network): one of them */
	cn_if: validateSide('cn', false),
	cn_network: validateSide('cn', true),
	mobile_if: validateSide('mobile', false),
	mobile_network: validateSide('mobile', true),

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

	port: validateInteger(1, 65535, _('Expecting a port number 1..65535')),
	offer_hold: validateInteger(1, 3600, _('Expecting a number of seconds 1..3600')),
	lease_grace: validateInteger(0, 86400, _('Expecting a number of seconds 0..86400')),
	new_station_rate: validateInteger(1, 10000, _('Expecting a number of new stations per second 1..10000')),
	tunnel_linger: validateInteger(0, 3600, _('Expecting a number of seconds 0..3600')),
	max_offers: validateInteger(1, 4096, _('Expecting a number of cells 1..4096')),
	decline_quarantine: validateInteger(0, 86400, _('Expecting a number of seconds 0..86400'))
};

/* the daemons' levels, not syslog's: each level adds to the one below it */
function debugLevels(o) {
	for (var i = 0; i < LOG_LEVELS.length; i++)
		o.value(String(i), '%d – %s'.format(i, _(LOG_LEVELS[i])));

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
		var m, s, o, keys;

		m = new form.Map('tmip', _('Transparent Mobile IP'),
			_('Wireless clients keep their IPv4 address and open connections while roaming between access points on different routed subnets. Each access point runs a correspondent node (CN); one router of the network runs the mobile location register (MLR).'));

		s = m.section(form.TypedSection, 'cn', _('Correspondent nodes'),
			_('One section per tmip-cn instance. Tunnel prefixes must differ between instances of one router.'));
		s.anonymous = true;
		s.addremove = true;

		s.tab('general', _('General Settings'));
		s.tab('addresses', _('Addresses'));
		s.tab('tunnels', _('Tunnels'));
		s.tab('security', _('MLR connection'));
		s.tab('advanced', _('Advanced Settings'));

		o = s.taboption('general', form.Flag, 'enabled', _('Enable'),
			_('Run a correspondent node for this section.'));
		o.default = o.enabled;
		o.rmempty = false;

		o = s.taboption('general', form.DynamicList, 'mlr', _('MLR address'),
			_('The location register as "host" or "host:port" (MLRP over TCP, default port 6554), or as a URL: tls://host[:port] for MLRP over TLS (default port 6555), mqtt://host[:port] or mqtts://host[:port] through an MQTT broker (default port 1883 or 8883). Several MLRs sharing an etcd store: one entry each, all reached the same way; the CN binds to the one serving.'));
		o.placeholder = '192.0.2.1:6554';
		o.rmempty = false;
		o.validate = validate.mlr;

		o = s.taboption('general', form.Value, 'network_name', _('Network name'),
			_('Identical on every CN and on the MLR.'));
		o.default = 'tmip';
		o.rmempty = false;
		o.validate = validate.network_name;

		o = s.taboption('general', form.Value, 'cn_name', _('CN name'),
			_('This CN in logs and status; unique in the network. 1..64 letters, digits, spaces and . _ - : (no space first or last). Default: the section name, else "cn".'));
		o.placeholder = 'Library 2nd floor';
		o.validate = validate.cn_name;

		o = s.taboption('general', widgets.NetworkSelect, 'cn_network', _('Backbone network'),
			_('The logical interface towards the routed backbone (other CNs and the MLR), e.g. wan. The CN takes its device and address from netifd, waits until it has an IPv4 address, and restarts when it changes. Or set the backbone device below instead.'));
		o.nocreate = true;
		o.validate = validate.cn_network;

		o = s.taboption('general', widgets.DeviceSelect, 'cn_if', _('Backbone device'),
			_('Instead of a backbone network: the Linux device towards the backbone. A device that does not exist yet is waited for (the log says so).'));
		o.noaliases = true;
		o.validate = validate.cn_if;

		o = s.taboption('general', widgets.NetworkSelect, 'mobile_network', _('Mobile network'),
			_('The logical interface the wireless clients are on, e.g. lan; may be the backbone\'s. Or set the mobile device below instead.'));
		o.nocreate = true;
		o.validate = validate.mobile_network;

		o = s.taboption('general', widgets.DeviceSelect, 'mobile_if', _('Mobile device'),
			_('Instead of a mobile network: the Linux device the wireless clients are on, usually the Wi-Fi bridge. A device that does not exist yet is waited for (the log says so).'));
		o.noaliases = true;
		o.validate = validate.mobile_if;

		o = s.taboption('addresses', form.DynamicList, 'addr_pool', _('Address pools'),
			_('"&lt;interface or subnet&gt; &lt;first|*&gt; &lt;last|*&gt;": hands out the whole /30 cells of the interface\'s subnet or of a subnet a.b.c.d/len, narrowed to first..last; at start the CN waits until the interface has such a subnet. Without a pool the CN borrows cells from other CNs.'));
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

		o = s.taboption('tunnels', form.Value, 'tunnel_linger', _('Keep unused tunnels'),
			_('Seconds a tunnel no client needs any more is kept, so that a client roaming back finds it (0..3600; 0: deleted at once).'));
		o.placeholder = '60';
		o.validate = validate.tunnel_linger;

		o = s.taboption('security', form.Value, 'secret', _('Key'),
			_('The key this CN shares with the MLR: 64 hex digits, as <code>tmip-mlr keygen NAME</code> prints them on the MLR router (NAME: this CN\'s name; the same key goes into a CN key there). Empty: unauthenticated, which only an MLR with authentication off accepts.'));
		o.password = true;
		o.validate = validate.secret;

		o = s.taboption('security', form.Value, 'tls_ca', _('TLS CA certificate'),
			_('For tls:// and mqtts://: the CA certificate (PEM file) that signs the server\'s certificate. Empty: the system\'s CA store.'));
		o.placeholder = '/etc/tmip/ca.pem';
		o.validate = validate.path;

		o = s.taboption('security', form.Value, 'tls_cert', _('TLS client certificate'),
			_('Optional client certificate (PEM file) for tls:// and mqtts://; needs its key.'));
		o.placeholder = '/etc/tmip/cn.pem';
		o.validate = validate.tls_cert;

		o = s.taboption('security', form.Value, 'tls_key', _('TLS client key'),
			_('The private key (PEM file) of the client certificate.'));
		o.placeholder = '/etc/tmip/cn.key';
		o.validate = validate.tls_key;

		o = s.taboption('security', form.Value, 'mqtt_username', _('MQTT user name'),
			_('For mqtt:// and mqtts://: the broker account. Default: the CN name.'));

		o = s.taboption('security', form.Value, 'mqtt_password', _('MQTT password'),
			_('The broker account\'s password (optional).'));
		o.password = true;

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

		o = s.taboption('advanced', form.Value, 'new_station_rate', _('New stations per second'),
			_('Clients without an address here, and not associated with hostapd, that are answered per second (bursts of twice as many); more are dropped (1..10000).'));
		o.placeholder = '20';
		o.validate = validate.new_station_rate;

		o = s.taboption('advanced', form.Value, 'ubus_socket', _('ubus socket'),
			_('Path of the ubusd socket the CN uses for hostapd\'s events, netifd (backbone and mobile networks) and its status object; default /var/run/ubus/ubus.sock, then /var/run/ubus.sock.'));
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

		s.tab('general', _('General Settings'));
		s.tab('tls', _('TLS'));
		s.tab('mqtt', _('MQTT'));

		o = s.taboption('general', form.Flag, 'enabled', _('Enable'), _('Run the MLR on this router.'));
		o.default = o.enabled;
		o.rmempty = false;

		o = s.taboption('general', form.Value, 'network_name', _('Network name'),
			_('Identical to the CNs\' network name.'));
		o.default = 'tmip';
		o.rmempty = false;
		o.validate = validate.network_name;

		o = s.taboption('general', form.Flag, 'auth', _('Authentication'),
			_('Accept only CNs that sign their messages with a key listed under CN keys below. Switch it off only in a closed lab: without it anyone on the backbone can register a CN and take over addresses.'));
		o.default = o.enabled;
		o.rmempty = false;
		o.validate = function(section_id, value) {
			if (value !== this.enabled || !keys || keys.cfgsections().length > 0)
				return true;
			return _('Authentication needs a CN key (below) for each CN; add them, or switch authentication off in a closed lab');
		};

		o = s.taboption('general', form.Value, 'port', _('Port'), _('TCP port the CNs connect to (MLRP over TCP).'));
		o.placeholder = '6554';
		o.validate = validate.port;

		o = s.taboption('general', form.Value, 'listen', _('Listen address'),
			_('IPv4 address to listen on; 0.0.0.0 for all.'));
		o.placeholder = '0.0.0.0';
		o.validate = validate.ipv4;

		o = s.taboption('general', form.Value, 'state_file', _('State file'),
			_('File where bindings persist across restarts (optional). Every change is appended to a journal beside it (FILE.journal), compacted into FILE now and then. Under /etc/tmip/ it survives reboots and upgrades at the cost of flash writes; under /tmp nothing is written to flash, but the bindings are lost at reboot.'));
		o.placeholder = '/etc/tmip/mlr.state';
		o.validate = validate.path;

		o = s.taboption('general', form.Value, 'store', _('Shared store (etcd)'),
			_('Instead of a state file: etcd://host[:port],... keeps the registry in that etcd cluster. Run the MLR with the same settings on two or more servers: one serves, the others stand by and take over within seconds when it fails. List every MLR on the CNs (list mlr).'));
		o.placeholder = 'etcd://10.0.0.1:2379,10.0.0.2:2379,10.0.0.3:2379';
		o.validate = validate.store;

		o = s.taboption('general', form.Value, 'offer_hold', _('Offer hold time'),
			_('Seconds an address offered to a client is held before it returns to the pool (1..3600).'));
		o.placeholder = '60';
		o.validate = validate.offer_hold;

		o = s.taboption('general', form.Value, 'lease_grace', _('Lease grace time'),
			_('Seconds a binding outlives its lease before it is reclaimed (0..86400).'));
		o.placeholder = '60';
		o.validate = validate.lease_grace;

		o = s.taboption('general', form.Value, 'max_offers', _('Offers per CN'),
			_('Addresses one access point may hold as offers not yet requested (1..4096).'));
		o.placeholder = '256';
		o.validate = validate.max_offers;

		o = s.taboption('general', form.Value, 'decline_quarantine', _('Decline quarantine'),
			_('Seconds an address a client declined (in use by another host) is not handed out again; 0 = none (0..86400).'));
		o.placeholder = '600';
		o.validate = validate.decline_quarantine;

		o = s.taboption('general', form.DynamicList, 'tunnel_type', _('Tunnel types'),
			_('Order of preference when agreeing on a tunnel type for a pair of CNs. Empty: all of them.'));
		tunnelTypes(o);

		o = s.taboption('general', form.ListValue, 'debug_level', _('Log level'));
		debugLevels(o);

		o = s.taboption('tls', form.Value, 'tls_port', _('TLS port'),
			_('Also serve MLRP over TLS on this port (CNs use tls://host[:port]; default port 6555). Needs the certificate and key below. Empty: no TLS.'));
		o.placeholder = '6555';
		o.validate = validate.tls_port;

		o = s.taboption('tls', form.Value, 'tls_cert', _('TLS certificate'),
			_('The MLR\'s certificate (PEM file).'));
		o.placeholder = '/etc/tmip/mlr.pem';
		o.validate = validate.tls_cert;

		o = s.taboption('tls', form.Value, 'tls_key', _('TLS key'),
			_('The private key (PEM file) of the certificate.'));
		o.placeholder = '/etc/tmip/mlr.key';
		o.validate = validate.tls_key;

		o = s.taboption('tls', form.Value, 'tls_ca', _('TLS client CA'),
			_('CA certificate (PEM file) to check the CNs\' client certificates with (optional).'));
		o.placeholder = '/etc/tmip/ca.pem';
		o.validate = validate.path;

		o = s.taboption('mqtt', form.Value, 'mqtt', _('MQTT broker'),
			_('Also serve the CNs through this MQTT broker: mqtt://host[:port] or mqtts://host[:port] (default port 1883 or 8883). Empty: no MQTT.'));
		o.placeholder = 'mqtts://broker.lan';
		o.validate = validate.mqtt;

		o = s.taboption('mqtt', form.Value, 'mqtt_username', _('MQTT user name'),
			_('The MLR\'s broker account. Default: tmip-mlr.'));
		o.placeholder = 'tmip-mlr';

		o = s.taboption('mqtt', form.Value, 'mqtt_password', _('MQTT password'),
			_('The broker account\'s password (optional).'));
		o.password = true;

		o = s.taboption('mqtt', form.Value, 'mqtt_ca', _('MQTT CA certificate'),
			_('For mqtts://: the CA certificate (PEM file) of the broker\'s certificate. Empty: the system\'s CA store.'));
		o.placeholder = '/etc/tmip/broker-ca.pem';
		o.validate = validate.path;

		keys = s = m.section(form.TableSection, 'key', _('CN keys'),
			_('For the MLR: one key per CN allowed to bind. <code>tmip-mlr keygen NAME</code> prints a fresh key for the CN named NAME; enter the same key in that CN\'s settings.'));
		s.anonymous = true;
		s.addremove = true;

		o = s.option(form.Value, 'cn', _('CN name'), _('The CN\'s name (its CN name setting, or its section name).'));
		o.rmempty = false;
		o.validate = validate.key_cn;

		o = s.option(form.Value, 'secret', _('Key'), _('64 hex digits, as <code>tmip-mlr keygen NAME</code> prints them.'));
		o.password = true;
		o.rmempty = false;
		o.validate = validate.key_secret;

		return m.render();
	}
});
