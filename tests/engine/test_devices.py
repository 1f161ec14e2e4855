"""--device auto|cpu|cuda for the model-backed stages."""

from __future__ import annotations

import pytest
import torch

from engine.devices import pick_device
from engine.errors import InputError


def test_auto_follows_cuda_and_cpu_is_always_there():
    assert pick_device("cpu") == torch.device("cpu")
    want = "cuda" if torch.cuda.is_available() else "cpu"
    assert pick_device("auto").type == want


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_one_clear_error():
    with pytest.raises(InputError, match="CUDA is not available"):
        pick_device("cuda")


def test_unknown_device_is_refused():
    with pytest.raises(InputError, match="unknown device 'gpu'"):
        pick_device("gpu")
