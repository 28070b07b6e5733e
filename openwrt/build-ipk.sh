#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
# Packs tmip into OpenWrt packages without the SDK: tmip-cn, tmip-mlr and luci-app-tmip, all
# architecture-independent (Architecture: all), as <name>_<version>-r<release>_all.ipk in OUTDIR.
#
#   sh openwrt/build-ipk.sh [OUTDIR]      (default dist/; `bash build.sh ipk` bundles, then runs this)
#
# The JavaScript bundles must be in dist/ (bash build.sh). Names, versions, dependencies, descriptions
# and file lists follow the feed's Makefiles (openwrt/net/tmip, openwrt/luci/luci-app-tmip), so these
# packages match what the SDK builds from the feed. The layout is the one OpenWrt's scripts/ipkg-build
# writes and opkg reads: a gzipped tar of ./debian-binary ("2.0"), ./data.tar.gz (the files, owned
# 0:0, with their install modes) and ./control.tar.gz (control, conffiles, postinst, prerm), every
# tar in GNU format with sorted names and one fixed mtime ($SOURCE_DATE_EPOCH, else the last commit's
# time), and gzip without names or times, so the same inputs give byte-identical packages.
# Needs node, GNU tar (--sort=name) and gzip. The native addon package node-tmip-packet needs the SDK (see
# openwrt/README.md).
set -eu
umask 022

root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/dist}
mkdir -p "$out"
out=$(cd "$out" && pwd)

tmip_mk=$root/openwrt/net/tmip/Makefile
luci_dir=$root/openwrt/luci/luci-app-tmip
luci_mk=$luci_dir/Makefile

die() {
	echo "build-ipk: $*" >&2
	exit 1
}

# makevar FILE NAME: the value of a 'NAME:=value' line
makevar() {
	sed -n "s/^$2:=[[:space:]]*//p" "$1" | head -n 1
}

# makedefine FILE NAME: the lines between 'define NAME' and 'endef'
makedefine() {
	awk -v name="$2" '$0 == "define " name { on = 1; next } on && $0 == "endef" { exit } on { print }' "$1"
}

# depends LIST: '+a +b' (a Makefile DEPENDS) as opkg's 'libc, a, b' (OpenWrt adds libc to every package)
depends() {
	printf 'libc'
	for dep in $1; do
		printf ', %s' "${dep#+}"
	done
}

# The release version is package.json's; src/version.ts and the feed Makefiles' PKG_VERSION carry the
# same string (test/unit/version.test.ts checks that; the packing below checks the Makefiles again).
version=$(node -e 'process.stdout.write(String(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).version ?? ""))' \
	"$root/package.json") || die "cannot read package.json's version (node is needed, as for build.sh)"
[ -n "$version" ] || die "no version in package.json"
epoch=${SOURCE_DATE_EPOCH:-$(git -C "$root" log -1 --format=%ct 2>/dev/null || date +%s)}

for bundle in tmip-cn.cjs tmip-mlr.cjs tmip-cn-mqtt.cjs tmip-mlr-mqtt.cjs; do
	[ -s "$root/dist/$bundle" ] || die "dist/$bundle is missing; run 'bash build.sh' first"
done
tar --version 2>/dev/null | grep -q 'GNU tar' || die "GNU tar is needed"

work=$(mktemp -d "${TMPDIR:-/tmp}/tmip-ipk.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 1' INT TERM

# add PACKAGE MODE SOURCE DEST: install SOURCE as DEST (absolute path on the router) with MODE
add() {
	mkdir -p "$work/$1/data${4%/*}"
	cp "$3" "$work/$1/data$4"
	chmod "$2" "$work/$1/data$4"
}

# tarball DIR FILE: the contents of DIR as a gzipped tar, the way ipkg-build writes them
tarball() {
	(cd "$1" && tar --format=gnu --numeric-owner --owner=0 --group=0 --sort=name \
		--mtime="@$epoch" -cf - .) | gzip -n > "$2"
}

# script PACKAGE NAME: a maintainer script from stdin
script() {
	mkdir -p "$work/$1/control"
	cat > "$work/$1/control/$2"
	chmod 0755 "$work/$1/control/$2"
}

# The maintainer scripts the SDK generates for every package, in effect: hand over to OpenWrt's
# default_postinst / default_prerm from /lib/functions.sh, which run the package's uci-defaults,
# enable and start its init scripts on a live system (stop and disable them on removal), or only
# enable them when building an image ($IPKG_INSTROOT set), and clear LuCI's caches.
default_scripts() {
	script "$1" postinst <<'EOF'
#!/bin/sh
[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0
[ -s "${IPKG_INSTROOT}/lib/functions.sh" ] || exit 0
# shellcheck source=/dev/null
. "${IPKG_INSTROOT}/lib/functions.sh"
default_postinst "$0" "$@"
EOF
	script "$1" prerm <<'EOF'
#!/bin/sh
[ -s "${IPKG_INSTROOT}/lib/functions.sh" ] || exit 0
# shellcheck source=/dev/null
. "${IPKG_INSTROOT}/lib/functions.sh"
default_prerm "$0" "$@"
EOF
}

# pack PACKAGE VERSION DEPENDS SOURCE SOURCENAME LICENSE SECTION DESCRIPTION [CONFFILES]
# (CONFFILES: one path a line)
pack() {
	pkg=$1 ver=$2 deps=$3 source=$4 sourcename=$5 license=$6 section=$7 description=$8
	conffiles=${9:-}
	dir=$work/$pkg

	find "$dir/data" -type d -exec chmod 0755 {} +
	tarball "$dir/data" "$dir/data.tar.gz"
	size=$(gzip -dc "$dir/data.tar.gz" | wc -c | tr -d ' ')

	mkdir -p "$dir/control"
	if [ -n "$conffiles" ]; then
		printf '%s\n' "$conffiles" | sed -e 's/^[[:space:]]*//' -e '/^$/d' | LC_ALL=C sort > "$dir/control/conffiles"
		chmod 0644 "$dir/control/conffiles"
	fi
	{
		printf 'Package: %s\n' "$pkg"
		printf 'Version: %s\n' "$ver"
		printf 'Depends: %s\n' "$deps"
		printf 'Source: %s\n' "$source"
		printf 'SourceName: %s\n' "$sourcename"
		printf 'License: %s\n' "$license"
		printf 'Section: %s\n' "$section"
		printf 'SourceDateEpoch: %s\n' "$epoch"
		printf 'Architecture: all\n'
		printf 'Installed-Size: %s\n' "$size"
		printf 'Description: '
		printf '%s\n' "$description" | sed -e 's,^[[:space:]]*, ,'
	} > "$dir/control/control"
	chmod 0644 "$dir/control/control"
	chmod 0755 "$dir/control"
	tarball "$dir/control" "$dir/control.tar.gz"

	mkdir -p "$dir/ipk"
	echo "2.0" > "$dir/ipk/debian-binary"
	mv "$dir/data.tar.gz" "$dir/control.tar.gz" "$dir/ipk/"
	chmod 0644 "$dir/ipk/debian-binary" "$dir/ipk/data.tar.gz" "$dir/ipk/control.tar.gz"
	file=$out/${pkg}_${ver}_all.ipk
	(cd "$dir/ipk" && tar --format=gnu --numeric-owner --owner=0 --group=0 --mtime="@$epoch" \
		-cf - ./debian-binary ./data.tar.gz ./control.tar.gz) | gzip -n > "$file"
	echo "packed: $file"
}

# --- tmip-cn and tmip-mlr (openwrt/net/tmip/Makefile) -------------------------------------------

tmip_ver=$version-r$(makevar "$tmip_mk" PKG_RELEASE)
tmip_name=$(makevar "$tmip_mk" PKG_NAME)
tmip_license=$(makevar "$tmip_mk" PKG_LICENSE)
[ "$(makevar "$tmip_mk" PKG_VERSION)" = "$version" ] ||
	die "PKG_VERSION in openwrt/net/tmip/Makefile differs from package.json's version $version"

for prog in tmip-cn tmip-mlr; do
	add "$prog" 0755 "$root/dist/$prog.cjs" "/usr/lib/tmip/$prog.cjs"
	add "$prog" 0644 "$root/dist/$prog-mqtt.cjs" "/usr/lib/tmip/$prog-mqtt.cjs"
	add "$prog" 0755 "$root/files/usr/sbin/$prog" "/usr/sbin/$prog"
	add "$prog" 0755 "$root/files/etc/init.d/$prog" "/etc/init.d/$prog"
	default_scripts "$prog"
done
add tmip-cn 0600 "$root/files/etc/config/tmip" /etc/config/tmip
add tmip-cn 0755 "$root/files/etc/uci-defaults/90-tmip-cn" /etc/uci-defaults/90-tmip-cn
add tmip-mlr 0755 "$root/files/etc/uci-defaults/90-tmip-mlr" /etc/uci-defaults/90-tmip-mlr
for prog in cn mlr; do
	add "tmip-$prog" 0755 "$root/files/usr/libexec/tmip/integrate" "/usr/libexec/tmip/$prog-integrate"
	add "tmip-$prog" 0644 "$root/files/lib/upgrade/keep.d/tmip-$prog" "/lib/upgrade/keep.d/tmip-$prog"
	# the Makefile's Package/<name>/prerm, run by default_prerm on removal (as the SDK packs it)
	makedefine "$tmip_mk" "Package/tmip-$prog/prerm" | sed 's/\$\$/$/g' | script "tmip-$prog" prerm-pkg
done

pack tmip-cn "$tmip_ver" \
	"$(depends "$(makedefine "$tmip_mk" Package/tmip-cn | sed -n 's/^[[:space:]]*DEPENDS:=//p')")" \
	feeds/tmip/net/tmip "$tmip_name" "$tmip_license" net \
	"$(makedefine "$tmip_mk" Package/tmip-cn/description)" \
	"$(makedefine "$tmip_mk" Package/tmip-cn/conffiles)"
pack tmip-mlr "$tmip_ver" \
	"$(depends "$(makedefine "$tmip_mk" Package/tmip-mlr | sed -n 's/^[[:space:]]*DEPENDS:=//p')")" \
	feeds/tmip/net/tmip "$tmip_name" "$tmip_license" net \
	"$(makedefine "$tmip_mk" Package/tmip-mlr/description)"

# --- luci-app-tmip (openwrt/luci/luci-app-tmip/Makefile, laid out as luci.mk does) -----------------

[ "$(makevar "$luci_mk" PKG_VERSION)" = "$version" ] ||
	die "PKG_VERSION in openwrt/luci/luci-app-tmip/Makefile differs from package.json's version $version"
luci_ver=$version-r$(makevar "$luci_mk" PKG_RELEASE)

# htdocs/ lands in /www, root/ in /; files keep their modes (0644, or 0755 when executable)
for tree in htdocs:/www root:; do
	src=$luci_dir/${tree%%:*}
	[ -d "$src" ] || continue
	find "$src" -type f | while IFS= read -r f; do
		if [ -x "$f" ]; then mode=0755; else mode=0644; fi
		add luci-app-tmip "$mode" "$f" "${tree#*:}${f#"$src"}"
	done
done
default_scripts luci-app-tmip
# luci.mk's postinst, run by default_postinst: forget LuCI's menu and module caches and make rpcd
# read the new ACL
script luci-app-tmip postinst-pkg <<'EOF'
#!/bin/sh
[ -n "${IPKG_INSTROOT}" ] || {
	rm -f /tmp/luci-indexcache
	rm -rf /tmp/luci-modulecache/
	killall -HUP rpcd 2>/dev/null
	exit 0
}
EOF

pack luci-app-tmip "$luci_ver" "$(depends "$(makevar "$luci_mk" LUCI_DEPENDS)")" \
	feeds/tmip/luci/luci-app-tmip luci-app-tmip "$(makevar "$luci_mk" PKG_LICENSE)" luci \
	"$(makevar "$luci_mk" LUCI_DESCRIPTION)"
