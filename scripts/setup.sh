#!/usr/bin/env bash
# Create (or update) the project's virtual environment: CPU torch first, then the project.
# Usage: scripts/setup.sh [--demo] [VENV_DIR]    (default .venv; idempotent, fast when up to date)
#   --demo   only what `main.py demo` needs: the Python packages (no test tools, no system
#            packages, no VR runtime, no npm tools). Without it: everything the tests use.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=test
if [ "${1:-}" = --demo ]; then
    MODE=demo
    shift
fi
VENV="${1:-.venv}"
PY="${PYTHON:-python3}"
if [ "$MODE" = test ]; then
    # System libraries for headless OpenGL (Mesa llvmpipe through EGL): the GL renderer, its
    # tests and `render --backend gl` need them. Installed only when missing (root needed).
    if ! ldconfig -p | grep -q "libEGL.so.1" || [ ! -d /usr/lib/x86_64-linux-gnu/dri ]; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            echo "installing Mesa EGL/OpenGL libraries"
            { apt-get update -qq && apt-get install -y -qq libegl1 libgl1 libgl1-mesa-dri libgbm1 \
                >/dev/null; } || echo "note: could not install Mesa EGL; OpenGL tests will skip" >&2
        else
            echo "note: Mesa EGL libraries missing; OpenGL rendering and its tests will be skipped" >&2
        fi
    fi
    # Xvfb and Qt's xcb runtime libraries: the viewer window (`main.py view`) and the tests
    # marked qt (run under a private Xvfb). Installed only when missing (root needed).
    if ! command -v Xvfb >/dev/null || ! ldconfig -p | grep -q "libxcb-cursor.so.0" \
        || ! ldconfig -p | grep -q "libxkbcommon-x11.so.0"; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            echo "installing Xvfb and Qt's xcb libraries"
            apt-get update -qq && apt-get install -y -qq xvfb libxcb-cursor0 libxcb-icccm4 \
                libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-xinerama0 \
                libxkbcommon-x11-0 libxcb-shape0 libxcb-randr0 libxcb-xfixes0 libegl1 libgl1 \
                libgl1-mesa-dri libfontconfig1 libdbus-1-3 >/dev/null \
                || echo "note: could not install Xvfb / Qt libraries; qt tests will skip" >&2
        else
            echo "note: Xvfb / Qt xcb libraries missing; the viewer window and qt tests need them" >&2
        fi
    fi
    # Monado, the OpenXR runtime the VR tests (marked xr) run against: built once (~2-3 min)
    # and cached in ${PANO4D_CACHE:-~/.cache/pano4d}; instant when cached. A failed build says
    # why and the xr tests skip. PANO4D_SKIP_MONADO=1 skips it.
    if [ "${PANO4D_SKIP_MONADO:-0}" != 1 ]; then
        bash scripts/build_monado.sh >/dev/null || echo "note: Monado not built; VR tests will skip" >&2
    fi
    # PlayCanvas splat-transform (npm, with Node 22 from npm) for the interop tests; optional.
    if [ "${PANO4D_SKIP_NPM:-0}" != 1 ]; then
        bash scripts/install_splat_transform.sh >/dev/null \
            || echo "note: splat-transform not installed; interop tests will skip" >&2
    fi
fi
if [ ! -x "$VENV/bin/python" ]; then
    echo "creating $VENV"
    "$PY" -m venv "$VENV"
fi
fresh() { [ -f "$1" ] && [ "$1" -nt pyproject.toml ] && [ "$1" -nt scripts/setup.sh ]; }
stamp="$VENV/.pano4d-installed-$MODE"
if fresh "$stamp" || fresh "$VENV/.pano4d-installed-test"; then  # test includes demo
    exit 0
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
# The CPU wheel of torch must come first: a bare "torch" requirement would pull a
# multi-GB CUDA build (see ENVIRONMENT.md). pyproject's range is satisfied by it.
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    echo "installing torch (CPU build)"
    "$VENV/bin/python" -m pip install -q "torch==2.13.0"
fi
if [ "$MODE" = demo ]; then
    echo "installing Pano4D and its dependencies"
    "$VENV/bin/python" -m pip install -q -e .
else
    echo "installing Pano4D, its dependencies and the test tools"
    "$VENV/bin/python" -m pip install -q -e ".[test]"
fi
touch "$stamp"
