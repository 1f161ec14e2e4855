#!/usr/bin/env bash
# PlayCanvas splat-transform (npm) for the interoperability tests (marked "interop"): it needs
# Node >= 22, which the node@22 npm package provides where the system Node is older. Installed
# once into ${PANO4D_CACHE:-~/.cache/pano4d}/splat-transform (about 400 MB, ~15 s); prints the
# CLI's path. The tests skip with one line when it is absent.
set -euo pipefail
CACHE="${PANO4D_CACHE:-$HOME/.cache/pano4d}/splat-transform"
BIN="$CACHE/node_modules/.bin"
if [ -x "$BIN/splat-transform" ] && [ -x "$BIN/node" ]; then
    echo "$BIN/splat-transform"
    exit 0
fi
command -v npm >/dev/null || { echo "install_splat_transform: npm not found" >&2; exit 1; }
mkdir -p "$CACHE"
(cd "$CACHE" && npm install --no-audit --no-fund --silent node@22 @playcanvas/splat-transform@3 >/dev/null)
echo "$BIN/splat-transform"
