"""Shared test fixtures. Tests never touch the network (HF_HUB_OFFLINE) and never a GPU
unless marked ``gpu``."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# The app's settings (recent files, last folders) and data (runs) go to a private place for
# the whole test session, so the suite never writes the user's own: Qt reads these XDG
# variables (on Linux) in this process and in every app process a test starts.
_PRIVATE_HOME = Path(tempfile.mkdtemp(prefix="pano4d-test-home-"))
atexit.register(shutil.rmtree, _PRIVATE_HOME, ignore_errors=True)
for _name in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME"):
    os.environ[_name] = str(_PRIVATE_HOME / _name.lower())

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
SAMPLES = ROOT / "resources" / "samples"


def smooth_equirect(height: int, width: int) -> np.ndarray:
    """A smooth float32 [H, W, 3] image defined on the sphere (continuous at seam and poles)."""
    yy, xx = np.mgrid[0:height, 0:width]
    lat = (0.5 - (yy + 0.5) / height) * np.pi
    lon = ((xx + 0.5) / width - 0.5) * 2 * np.pi
    x, y, z = np.cos(lat) * np.sin(lon), np.sin(lat), -np.cos(lat) * np.cos(lon)
    img = np.stack([0.5 + 0.4 * x, 0.5 + 0.4 * y * z + 0.1 * z, 0.5 + 0.3 * (x * x - z * z)], -1)
    return img.astype(np.float32)


def textured_equirect(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A uint8 [H, W, 3] panorama with texture at several scales, continuous on the sphere."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    lat = (0.5 - (yy + 0.5) / height) * np.pi
    lon = ((xx + 0.5) / width - 0.5) * 2 * np.pi
    p = np.stack([np.cos(lat) * np.sin(lon), np.sin(lat), -np.cos(lat) * np.cos(lon)], -1)
    img = np.zeros((height, width, 3))
    for freq in (2, 5, 11, 23):
        k = rng.normal(size=(3, 3)) * freq
        img += np.cos(p @ k.T + rng.uniform(0, 6.28, 3)) / freq**0.5
    img = (img - img.min()) / (img.max() - img.min())
    return (img * 255).round().astype(np.uint8)


@pytest.fixture
def smooth_pano():
    return smooth_equirect(256, 512)


# --------------------------------------------------------------------------- Qt tests: Xvfb


def _start_xvfb(config) -> None:
    """Start a private Xvfb (a free display number, chosen by Xvfb itself) and point DISPLAY
    and QT_QPA_PLATFORM at it for this process; stopped when the session ends."""
    from app.xvfb import start_xvfb, stop_xvfb

    started = start_xvfb("1280x1024x24")
    if started is None:
        return  # tests marked qt skip themselves ("Xvfb not installed")
    proc, display = started

    def stop() -> None:
        stop_xvfb(proc)
        os.environ.pop("DISPLAY", None)

    config.add_cleanup(stop)
    os.environ["DISPLAY"] = display
    os.environ["QT_QPA_PLATFORM"] = "xcb"


def pytest_collection_modifyitems(config, items):
    """Only when tests marked ``qt`` are collected and no DISPLAY is set: start Xvfb (engine
    and EGL tests never need X)."""
    if os.environ.get("DISPLAY") or not any(i.get_closest_marker("qt") for i in items):
        return
    _start_xvfb(config)
