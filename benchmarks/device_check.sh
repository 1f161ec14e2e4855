#!/usr/bin/env bash
# The checks that need a GPU, in one prepared run on a lent machine (the device tool):
#
#   gl          the GL splat renderer's stereo 2x(1832x1920) frame time at 1 M and 5 M splats
#               through EGL on the GPU (issue 11's 90 fps target), benchmarks/bench_gl.py
#   gsplat      gsplat 1.5.3's CUDA kernels built (JIT, sm_90)
#   tests       the gpu-marked tests: the rasteriser against gsplat, the CUDA lift vs the CPU one
#   lift_2048   the cuda preset's lift of frame 0 at full resolution, park 2048x1024
#               (bench_scale: psnr_native, magnified, headset, wall, CUDA peak memory)
#   denoiser    the Panoramic Denoiser with diffusers on CUDA (tiny random SVD)
#   lift_4096   the same lift on the 4096x2048 example
#
# Prepare here once with scripts/device_prepare.sh (fills the git-ignored .device/), then
#   run(command="bash benchmarks/device_check.sh", carry=[".device"], timeout_s=590)
# Steps run in the order above within BUDGET seconds (default 560); name steps to run only
# those (a second call on the still-warm machine: `bash benchmarks/device_check.sh lift_4096`).
# $OUT gets summary.md and one log per step (at most 8 files come back). To try the script
# itself on a machine without a GPU: DEVICE_SETUP=0 PY=.venv/bin/python BUDGET=300 bash ...
# (DEVICE_SETUP=0 skips unpacking the carried packages into /, which only the device needs).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/device_check}
BUDGET=${BUDGET:-560}
PY=${PY:-python3} # the device image's python3 holds its CUDA torch
mkdir -p "$OUT"
START=$(date +%s)
STEPS=("$@")
[ ${#STEPS[@]} -eq 0 ] && STEPS=(gl gsplat tests lift_2048 denoiser lift_4096)
SUMMARY="$OUT/summary.md"

left() { echo $((BUDGET - ($(date +%s) - START))); }

step() { # step NAME MAX_SECONDS COMMAND...: run with a time limit, log to $OUT/NAME.log
    local name=$1 limit=$2
    shift 2
    local budget
    budget=$(left)
    ((limit > budget)) && limit=$budget
    if ((limit < 30)); then
        echo "| $name | not run: out of time |" >>"$SUMMARY"
        return 1
    fi
    local t0 rc
    t0=$(date +%s)
    PYTHONUNBUFFERED=1 timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
    rc=$?
    echo "| $name | exit $rc, $(($(date +%s) - t0)) s (limit $limit s) |" >>"$SUMMARY"
    return $rc
}

setup() { # the carried GL loaders and wheels; idempotent on a warm machine
    if [ ! -e /tmp/site/.done ]; then
        for f in .device/gl/*.deb; do dpkg -x "$f" /; done
        ldconfig
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
            --upgrade --target /tmp/site .device/whl/*.whl && touch /tmp/site/.done
    fi
    local nv=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
    [ -e "$nv" ] && export __EGL_VENDOR_LIBRARY_FILENAMES=$nv
    export PYTHONPATH=/tmp/site:$PWD
    export TORCH_EXTENSIONS_DIR=/tmp/torch_extensions TORCH_CUDA_ARCH_LIST=9.0
    export MAX_JOBS=${MAX_JOBS:-16}
}

{
    echo "# device_check $(date -u +%FT%TZ): ${STEPS[*]}"
    echo
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1
    echo
    echo "| step | result |"
    echo "|---|---|"
} >"$SUMMARY"
if [ "${DEVICE_SETUP:-1}" = 1 ]; then
    setup >"$OUT/setup.log" 2>&1 || echo "| setup | failed: see setup.log |" >>"$SUMMARY"
fi
"$PY" -c "import torch, gsplat; print('torch', torch.__version__, 'cuda',
    torch.cuda.is_available(), 'gsplat', gsplat.__version__)" >>"$SUMMARY" 2>&1

for s in "${STEPS[@]}"; do
    case $s in
    gl) step gl 120 "$PY" benchmarks/bench_gl.py --counts 1000000 5000000 \
        --modes stereo mono --reps 5 ;;
    gsplat) step gsplat 300 "$PY" -c "from gsplat.cuda._backend import _C; print(_C)" ;;
    tests) step tests 150 "$PY" -m pytest -q -m gpu -p no:cacheprovider \
        tests/engine/test_raster.py tests/engine/test_lift.py tests/engine/test_devices.py ;;
    lift_2048) step lift_2048 200 "$PY" benchmarks/bench_scale.py --preset cuda \
        --panorama resources/samples/park_2048x1024.png --lift '{}' ;;
    denoiser) step denoiser 90 "$PY" benchmarks/bench_denoiser.py --device cuda \
        --size 512 --skip-ablation ;;
    lift_4096) step lift_4096 300 "$PY" benchmarks/bench_scale.py --preset cuda \
        --panorama .device/data/pannellum_examplepano_4096x2048.jpg --lift '{}' ;;
    *) echo "| $s | unknown step |" >>"$SUMMARY" ;;
    esac
done
echo >>"$SUMMARY"
echo "total $(($(date +%s) - START)) s" >>"$SUMMARY"
cat "$SUMMARY"
