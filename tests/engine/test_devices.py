"""--device auto|cpu|cuda for the model-backed stages."""

from __future__ import annotations

import pytest
import torch

from engine.devices import pick_device
from engine.errors import InputError


def test_auto_picks_the_cpu_where_no_gpu_is_visible():
    """In a process that sees no GPU (CUDA_VISIBLE_DEVICES empty), auto gives a device a
    model can run on: the CPU."""
    import os
    import subprocess
    import sys

    code = (
        "import torch\nfrom engine.devices import pick_device\n"
        "d = pick_device('auto'); x = torch.ones(2, device=d) * 3\n"
        "print(d.type, float(x.sum()))"
    )
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["cpu", "6.0"]
    assert pick_device("cpu") == torch.device("cpu")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_auto_picks_the_gpu_where_there_is_one():
    d = pick_device("auto")
    assert d.type == "cuda" and float((torch.ones(2, device=d) * 3).sum()) == 6.0


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_one_clear_error():
    with pytest.raises(InputError, match="CUDA is not available"):
        pick_device("cuda")


def test_unknown_device_is_refused():
    with pytest.raises(InputError, match="unknown device 'gpu'"):
        pick_device("gpu")
