#!/usr/bin/env bash
# Builds the Debian package `kwik` from a configured build directory, without debian/ and
# dpkg-buildpackage: `meson install --destdir` into a staging tree (the same install CI tests),
# Depends from dpkg-shlibdeps on the installed binaries plus the tools kwik-prepare runs,
# conffiles for everything under /etc, md5sums, the maintainer scripts of this folder, then
# dpkg-deb. Reuses the build (no second compile: seconds, not a full rebuild).
#   deploy/package/build-deb.sh BUILD_DIR OUTDIR     -> OUTDIR/kwik_<version>_<arch>.deb
# The build directory must be configured with prefix /usr (the project's default) and
# sysconfdir /etc. Exit status: 0 built, 1 a step failed, 2 usage.
set -euo pipefail

usage() { echo "usage: $0 BUILD_DIR OUTDIR" >&2; exit 2; }
die() { echo "build-deb.sh: error: $*" >&2; exit 1; }
[ $# -eq 2 ] || usage
build=$(cd "$1" 2>/dev/null && pwd) || { echo "build-deb.sh: BUILD_DIR: $1 is not a directory" >&2; exit 2; }
[ -f "$build/build.ninja" ] || { echo "build-deb.sh: BUILD_DIR: $1 is not a meson build directory" >&2; exit 2; }
mkdir -p "$2" || { echo "build-deb.sh: OUTDIR: cannot create $2" >&2; exit 2; }
out=$(cd "$2" && pwd)
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
for tool in dpkg-deb dpkg-shlibdeps meson ninja; do
    command -v "$tool" >/dev/null || die "$tool not found (apt-get install dpkg-dev meson ninja-build)"
done

read -r prefix sysconfdir version < <(meson introspect --buildoptions --projectinfo "$build" | python3 -c '
import json, sys
d = json.load(sys.stdin)
opts = {o["name"]: o["value"] for o in d["buildoptions"]}
print(opts["prefix"], opts["sysconfdir"], d["projectinfo"]["version"])')
[ "$prefix" = /usr ] || die "$build is configured with prefix $prefix; the package needs /usr (meson configure $build -Dprefix=/usr -Dsysconfdir=/etc)"
[ "$sysconfdir" = /etc ] || die "$build is configured with sysconfdir $sysconfdir; the package needs /etc (meson configure $build -Dsysconfdir=/etc)"
arch=$(dpkg --print-architecture)
revision=${KWIK_DEB_REVISION:-1}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
stage=$work/root

# Only what is installed gets built (not the tests and benchmarks), then installed stripped.
mapfile -t targets < <(meson introspect --targets "$build" | python3 -c '
import json, os, sys
top = sys.argv[1]
for t in json.load(sys.stdin):
    if t.get("installed"):
        for f in t["filename"]:
            print(os.path.relpath(f, top))' "$build")
if [ ${#targets[@]} -gt 0 ]; then
    ninja -C "$build" "${targets[@]}" >/dev/null
fi
meson install -C "$build" --no-rebuild --strip --quiet --destdir "$stage" >/dev/null

# Depends: the shared libraries of every ELF file (dpkg-shlibdeps wants a debian/control).
mkdir -p "$work/src/debian"
printf 'Source: kwik\n\nPackage: kwik\nArchitecture: any\n' > "$work/src/debian/control"
mapfile -t elves < <(find "$stage" -type f -perm -u+x -exec sh -c 'head -c4 "$1" | grep -q "ELF"' _ {} \; -print | sort)
[ ${#elves[@]} -gt 0 ] || die "no executables installed under $stage (is $build built?)"
shlibs=$(cd "$work/src" && dpkg-shlibdeps -O "${elves[@]}" 2>"$work/shlibdeps.err") ||
    die "dpkg-shlibdeps: $(cat "$work/shlibdeps.err")"
shlibs=${shlibs#shlibs:Depends=}
# DPDK's drivers are plugins EAL loads at start (Debian: /usr/lib/<triplet>/dpdk/pmds-<abi>), not
# libraries kwikd links, so dpkg-shlibdeps cannot see them: named here, with the ABI of the
# librte-eal it found. Depends: the buses, the default mempool handler (without it no mempool
# can be made) and the PMDs of the supported NICs (ixgbe, i40e, ice), AF_XDP, AF_PACKET and TAP
# (the exception path); Recommends: mlx5 (pulls rdma-core: only mlx5 hosts want it) and the
# virtual devices of tests and labs.
abi=$(grep -o 'librte-eal[0-9]*' <<<"$shlibs" | head -n1 | sed 's/^librte-eal//')
[ -n "$abi" ] || die "dpkg-shlibdeps found no librte-eal in kwikd's libraries: $shlibs"
rte() { # librte-net-ixgbe23; a name ending in a digit gets a hyphen: librte-net-mlx5-23
    local n
    for n in "$@"; do
        case "$n" in *[0-9]) printf ', librte-%s-%s' "$n" "$abi" ;; *) printf ', librte-%s%s' "$n" "$abi" ;; esac
    done
}
# dpdk: dpdk-devbind.py and dpdk-hugepages.py (kwik-prepare); python3 >= 3.11: tomllib;
# kmod: modprobe; systemd: the units, systemd-sysusers and systemd-tmpfiles in postinst.
depends="$shlibs$(rte bus-pci bus-vdev mempool-ring net-ixgbe net-i40e net-ice net-af-xdp net-af-packet net-tap)"
depends="$depends, dpdk, python3 (>= 3.11), kmod, systemd"
recommends=$(rte net-mlx5 net-virtio net-ring net-null net-pcap net-memif)
recommends=${recommends#, }

install -d -m 0755 "$stage/DEBIAN"
installed_kb=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
cat > "$stage/DEBIAN/control" <<CONTROL
Package: kwik
Version: $version-$revision
Architecture: $arch
Maintainer: Kwik maintainers <kwik@localhost>
Installed-Size: $installed_kb
Depends: $depends
Recommends: $recommends
Section: net
Priority: optional
Description: Kwik multipath transport appliance (DPDK data plane and control process)
 kwikd, the DPDK poll-mode data plane, and kwik-cp, its control process (KCP over TLS),
 with kwikctl, kwikd-cmd and the Kwik tools; kwik-prepare reserves hugepages and binds
 NICs to vfio-pci from /etc/kwik/kwikd.toml. Units: kwik-prepare.service, kwikd.service,
 kwik-cp.service (installed, not enabled or started).
CONTROL
(cd "$stage" && find etc -type f | sort | sed 's|^|/|') > "$stage/DEBIAN/conffiles"
(cd "$stage" && find . -path ./DEBIAN -prune -o -path ./etc -prune -o -type f -print | sed 's|^\./||' | sort |
    xargs -d '\n' md5sum) > "$stage/DEBIAN/md5sums"
for script in postinst prerm postrm; do
    install -m 0755 "$here/$script" "$stage/DEBIAN/$script"
done
chmod 0644 "$stage/DEBIAN/control" "$stage/DEBIAN/conffiles" "$stage/DEBIAN/md5sums"

deb="$out/kwik_${version}-${revision}_${arch}.deb"
dpkg-deb --root-owner-group -Zgzip --build "$stage" "$deb" >/dev/null
echo "$deb"
