#!/usr/bin/env bash
# Fill .device/ (git-ignored) with what benchmarks/device_check.sh needs on a lent GPU
# machine that cannot reach the network (see the device tool's README): the Python wheels
# its image lacks (for CPython 3.12, x86-64), the GL loader packages for EGL on the NVIDIA
# driver, and the 4096x2048 example panorama. About 30 MB; run once, here:
#
#     bash scripts/device_prepare.sh
#
# then run `bash benchmarks/device_check.sh` there with carry [".device"].
set -euo pipefail
cd "$(dirname "$0")/.."
DEV=.device
mkdir -p "$DEV/whl" "$DEV/gl" "$DEV/data"

# the versions this project is tested with (pyproject.toml); the image has torch, numpy,
# opencv, transformers, accelerate, safetensors, scipy, psutil, tifffile, pytest, ninja...
WHEELS=(gsplat==1.5.3 diffusers==0.42.1 plyfile==1.1.5 gsply==0.4.6 pyopengl==3.1.10
        openexr==3.5.3 ftfy==6.3.1 wcwidth==0.9.4 zstandard==0.25.0
        importlib_metadata)
PLATFORMS=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 \
         manylinux2014_x86_64 manylinux1_x86_64; do PLATFORMS+=(--platform "$p"); done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp "${PLATFORMS[@]}" -d "$DEV/whl" "${WHEELS[@]}"

# EGL / GL loaders (glvnd); the NVIDIA driver's own libraries are mounted there
o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64)
mkdir -p /tmp/amd64/partial
apt-get "${o[@]}" update -qq
(cd "$DEV/gl" && apt-get "${o[@]}" download -qq libvulkan1 libegl1 libglvnd0 libopengl0 \
    libgl1 libglx0 libgles2)

cp ../shared/data/pannellum_examplepano_4096x2048.jpg "$DEV/data/"
du -sh "$DEV"
