#!/usr/bin/env bash
# Sets a Debian 12 machine up for Kwik and runs one job:
#   deploy/setup.sh demo    install, build, run the main job on an embedded default (no NIC,
#                           no hugepages)
#   deploy/setup.sh test    install, build, run every test suite (unit, integration, e2e, perf, deploy, fuzz)
#   deploy/setup.sh bench   install, build, run the line-rate benchmark (perf/benchmark.py;
#                           root, 2 MiB hugepages; extra arguments go to it, e.g. --quick)
#   deploy/setup.sh build   install and build only
#   deploy/setup.sh deps    install packages only
# Idempotent: packages already installed are not touched, an existing build is reused.
# Environment: KWIK_BUILD_DIR (default build), KWIK_FUZZ_SECONDS (default 60),
#              KWIK_SKIP_FUZZ=1 to leave the fuzz suite out of 'test'.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"
build_dir=${KWIK_BUILD_DIR:-build}
fuzz_dir=${build_dir}-fuzz

# Every Debian package the build, the tests and the tools need; the README's dependency list
# says why each one is there.
packages=(
    build-essential g++ clang llvm libclang-rt-14-dev meson ninja-build pkg-config cmake
    python3 git iproute2 ethtool
    libdpdk-dev dpdk-dev
    libisal-dev libmimalloc-dev libbpf-dev libxdp-dev
    protobuf-compiler libprotobuf-dev
    libpcap-dev nlohmann-json3-dev libcli11-dev libtomlplusplus-dev libssl-dev
    libgtest-dev libgmock-dev libbenchmark-dev
    valgrind
    lua5.4
    python3-matplotlib
    dpdk dpkg-dev systemd
)

log() { printf '\033[1m[kwik]\033[0m %s\n' "$*"; }
die() { printf '[kwik] error: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root to run: $* (run as root or install sudo)"
    fi
}

install_packages() {
    local missing=()
    local p
    for p in "${packages[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$p")
        fi
    done
    if [ ${#missing[@]} -eq 0 ]; then
        log "all ${#packages[@]} packages already installed"
        return
    fi
    log "installing: ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
}

configure() {
    local dir=$1
    shift
    if [ -f "$dir/build.ninja" ]; then
        meson setup --reconfigure "$dir" "$@" >/dev/null
    else
        meson setup "$dir" "$@"
    fi
}

build() {
    configure "$build_dir" -Ddeveloper_mode=true -Dprefix=/usr
    ninja -C "$build_dir"
}

# Prints the closing 'N passed, N failed' line from meson's test logs.
report() {
    python3 - "$@" <<'EOF'
import json, sys
passed = failed = skipped = 0
for path in sys.argv[1:]:
    try:
        lines = open(path).read().splitlines()
    except OSError:
        continue
    for line in lines:
        r = json.loads(line).get("result")
        if r in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif r == "SKIP":
            skipped += 1
        else:
            failed += 1
print(f"{passed} passed, {failed} failed, {skipped} skipped")
EOF
}

run_tests() {
    build
    local rc=0 logs=("$build_dir/meson-logs/testlog.json")
    meson test -C "$build_dir" --suite unit --suite integration --suite e2e --suite perf --suite deploy \
        --print-errorlogs || rc=1
    if [ "${KWIK_SKIP_FUZZ:-0}" != 1 ]; then
        # A clang build with the sanitizers for the fuzz targets alone (and the generator that
        # makes their seed corpus), not the whole tree a second time.
        CC=clang CXX=clang++ configure "$fuzz_dir" -Dfuzz=enabled -Dbenchmarks=disabled
        ninja -C "$fuzz_dir" tests/fuzz/kdp_packet_fuzz tests/fuzz/kdp_fuzz_seed_writer \
            tools/pcapgen/kwik-pcapgen tests/fuzz/engine_config_fuzz \
            tests/fuzz/kcp_framing_fuzz tests/fuzz/kcp_fuzz_seed_writer
        KWIK_FUZZ_SECONDS=${KWIK_FUZZ_SECONDS:-60} \
            meson test -C "$fuzz_dir" --no-rebuild --suite fuzz --print-errorlogs || rc=1
        logs+=("$fuzz_dir/meson-logs/testlog.json")
    fi
    report "${logs[@]}"
    return $rc
}

run_demo() {
    build
    "$top/deploy/demo.sh" "$build_dir"
}

run_bench() {
    build
    as_root /usr/bin/python3 "$top/perf/benchmark.py" --build "$build_dir" "$@"
}

case "${1:-}" in
deps) install_packages ;;
build) install_packages; build ;;
test) install_packages; run_tests ;;
demo) install_packages; run_demo ;;
bench) install_packages; shift; run_bench "$@" ;;
*)
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
    [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ] || exit 2
    ;;
esac
