#!/usr/bin/env bash
# Build Monado (the open-source OpenXR runtime) once and cache it, for the VR tests and
# `python main.py xr` without a headset (null compositor + simulated HMD / controllers).
#
# Usage: scripts/build_monado.sh            prints the install prefix on the last line
#   PANO4D_CACHE   cache root (default ~/.cache/pano4d); the runtime lands in
#                  $PANO4D_CACHE/monado-25.0.0 with share/openxr/1/openxr_monado.json
#
# Debian 12 does not package Monado; Debian 13 (trixie) has 25.0.0 as a source package. We
# fetch it through a PRIVATE apt configuration (the system's sources are left alone),
# install the build dependencies from the system's own suite, and build the runtime only
# (no service, no GUI, no hardware drivers). Idempotent: a cached build returns at once.
# On failure: one line on stderr saying why, exit status 1.
set -uo pipefail

VERSION=25.0.0
CACHE="${PANO4D_CACHE:-$HOME/.cache/pano4d}"
PREFIX="$CACHE/monado-$VERSION"
MANIFEST="$PREFIX/share/openxr/1/openxr_monado.json"
WORK="$CACHE/monado-build"
LOG="$WORK/build.log"

fail() {
    echo "build_monado: $1 (log: $LOG)" >&2
    exit 1
}

if [ -f "$MANIFEST" ] && [ -f "$PREFIX/.pano4d-complete" ]; then
    echo "$PREFIX"
    exit 0
fi
mkdir -p "$WORK" || { echo "build_monado: cannot create $WORK" >&2; exit 1; }
: >"$LOG"

# Build dependencies (and lavapipe: Monado's compositor needs a Vulkan driver even headless).
DEPS=(cmake ninja-build glslang-tools libeigen3-dev libcjson-dev libvulkan-dev libx11-dev
    libx11-xcb-dev libxcb-randr0-dev libxrandr-dev libgl-dev libegl1-mesa-dev libglvnd-dev
    libdbus-1-dev libbsd-dev libsystemd-dev libudev-dev libusb-1.0-0-dev libhidapi-dev
    libsdl2-dev libwayland-dev wayland-protocols pkg-config libxxf86vm-dev
    mesa-vulkan-drivers libvulkan1 g++ xz-utils)
missing=()
for p in "${DEPS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    [ "$(id -u)" = 0 ] || fail "missing build packages (${missing[*]}) and not root to install them"
    echo "build_monado: installing ${#missing[@]} build packages" >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends "${missing[@]}"; } >>"$LOG" 2>&1 \
        || fail "apt-get install of the build dependencies failed"
fi

# Fetch the source package through a private apt configuration listing trixie's deb-src.
APT="$WORK/apt"
mkdir -p "$APT/lists/partial" "$APT/archives/partial" "$APT/etc" "$WORK/src"
KEYRING=/usr/share/keyrings/debian-archive-trixie-stable.gpg
[ -f "$KEYRING" ] || KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
cat >"$APT/etc/sources.list" <<EOF
deb-src [signed-by=$KEYRING,/usr/share/keyrings/debian-archive-trixie-automatic.gpg] http://deb.debian.org/debian trixie main
EOF
APT_OPTS=(-o "Dir::Etc::SourceList=$APT/etc/sources.list" -o "Dir::Etc::SourceParts=/nonexistent"
    -o "Dir::State::Lists=$APT/lists" -o "Dir::Cache::Archives=$APT/archives"
    -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache=" -o "APT::Sandbox::User=root")
orig=$(ls "$WORK"/src/monado_"$VERSION"*.orig.tar.* 2>/dev/null | head -1)
if [ -z "$orig" ]; then
    echo "build_monado: fetching the monado $VERSION source package (Debian trixie)" >&2
    apt-get "${APT_OPTS[@]}" update >>"$LOG" 2>&1 || fail "apt-get update of the private trixie deb-src list failed"
    # Only the orig tarball is needed (apt checks its hash against the signed index); some
    # mirrors lack the .dsc / Debian diff, so apt's exit status alone does not decide.
    (cd "$WORK/src" && apt-get "${APT_OPTS[@]}" source --download-only monado) >>"$LOG" 2>&1
    orig=$(ls "$WORK"/src/monado_"$VERSION"*.orig.tar.* 2>/dev/null | head -1)
    [ -n "$orig" ] || fail "apt-get source monado gave no monado_$VERSION orig tarball"
fi
SRC="$WORK/src/monado-$VERSION"
if [ ! -f "$SRC/CMakeLists.txt" ]; then
    rm -rf "$SRC"
    mkdir -p "$SRC" && tar -xf "$orig" -C "$SRC" --strip-components=1 >>"$LOG" 2>&1 \
        || fail "could not unpack $orig"
fi

# Configure: runtime only, in-process (no service), no GUI, no hardware drivers.
BUILD="$WORK/build"
OFF=(XRT_FEATURE_SERVICE XRT_FEATURE_STEAMVR_PLUGIN XRT_MODULE_MONADO_GUI XRT_MODULE_AUX_VIVE
    BUILD_TESTING BUILD_DOC XRT_FEATURE_TRACING XRT_HAVE_OPENCV XRT_HAVE_GST XRT_HAVE_LIBUVC
    XRT_HAVE_REALSENSE XRT_HAVE_ONNXRUNTIME XRT_HAVE_PERCETTO
    XRT_BUILD_DRIVER_STEAMVR_LIGHTHOUSE XRT_BUILD_DRIVER_WMR XRT_BUILD_DRIVER_XREAL_AIR
    XRT_BUILD_DRIVER_VIVE XRT_BUILD_DRIVER_SURVIVE XRT_BUILD_DRIVER_PSVR XRT_BUILD_DRIVER_PSMV
    XRT_BUILD_DRIVER_HYDRA XRT_BUILD_DRIVER_DAYDREAM XRT_BUILD_DRIVER_ARDUINO
    XRT_BUILD_DRIVER_HDK XRT_BUILD_DRIVER_OHMD XRT_BUILD_DRIVER_NS XRT_BUILD_DRIVER_ULV2
    XRT_BUILD_DRIVER_REALSENSE XRT_BUILD_DRIVER_DEPTHAI XRT_BUILD_DRIVER_RIFT_S
    XRT_BUILD_DRIVER_ROKID XRT_BUILD_DRIVER_TWRAP XRT_BUILD_DRIVER_EUROC XRT_BUILD_DRIVER_VF
    XRT_BUILD_DRIVER_HANDTRACKING XRT_BUILD_DRIVER_SIMULAVR
    XRT_BUILD_DRIVER_PSSENSE XRT_BUILD_DRIVER_REMOTE XRT_BUILD_DRIVER_OPENGLOVES
    )
flags=()
for o in "${OFF[@]}"; do flags+=("-D$o=OFF"); done
echo "build_monado: configuring and building (a few minutes on 2 cores)" >&2
cmake -S "$SRC" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_INSTALL_PREFIX="$PREFIX" -DXRT_BUILD_DRIVER_SIMULATED=ON \
    -DXRT_BUILD_DRIVER_QWERTY=ON -DXRT_FEATURE_WINDOW_PEEK=OFF "${flags[@]}" \
    >>"$LOG" 2>&1 || fail "cmake configure failed"
cmake --build "$BUILD" >>"$LOG" 2>&1 || fail "build failed"
rm -rf "$PREFIX"
cmake --install "$BUILD" >>"$LOG" 2>&1 || fail "install failed"
[ -f "$MANIFEST" ] || fail "the install has no $MANIFEST"
touch "$PREFIX/.pano4d-complete"
rm -rf "$BUILD" "$SRC"  # ~400 MB; the source tarball stays for a rebuild
echo "$PREFIX"
