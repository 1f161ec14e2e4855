"""Checkpoints of a ``generate`` run in ``OUT/.pano4d/`` (animated frames, depth, the lifted
static set, one dynamic set per frame), tied to a fingerprint of its inputs and settings so
that ``--resume`` continues only the same run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
from safetensors.torch import load_file, save_file

from .config import GenerateConfig, Inputs
from .errors import ResumeMismatch
from .fsutil import atomic_file, atomic_write_json
from .gaussians import Gaussians


def fingerprint(inputs: Inputs, cfg: GenerateConfig) -> str:
    """A hash of the settings and of every input file's bytes (a per-frame depth folder's
    files in order, the mask images a region file names): a resumed run must match it."""
    h = hashlib.sha256()
    h.update(json.dumps(dataclasses.asdict(cfg), sort_keys=True, default=str).encode())
    extra = [inputs.direction_deg, inputs.speed_deg_s, inputs.motion, list(inputs.region_args)]
    h.update(json.dumps([*extra, inputs.seg_model]).encode())
    for p in (inputs.panorama, inputs.mask, inputs.regions, inputs.depth):
        h.update(b"|")
        if p is not None and Path(p).is_dir():  # per-frame depth: every file, in order
            for f in sorted(Path(p).iterdir()):
                h.update(f.name.encode() + (f.read_bytes() if f.is_file() else b""))
        elif p is not None:
            h.update(Path(p).read_bytes())
    if inputs.regions is not None:  # the region file names mask images: hash them too
        folder = Path(inputs.regions).parent
        for entry in json.loads(Path(inputs.regions).read_text("utf-8-sig")).get("regions", []):
            mask = folder / str(entry.get("mask", ""))
            if mask.is_file():
                h.update(mask.read_bytes())
    return h.hexdigest()


class Checkpoints:
    """``OUT/.pano4d/``: per-stage results of a run, tied to its fingerprint."""

    def __init__(self, out: Path, fingerprint: str, resume: bool) -> None:
        self.dir = out / ".pano4d"
        state = self._read_state()
        if resume and state is not None and state.get("fingerprint") != fingerprint:
            raise ResumeMismatch(
                f"the unfinished run in {out} used other inputs or settings; "
                "run without --resume to start over"
            )
        if not resume or state is None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir.mkdir(parents=True)
            self.state = {"fingerprint": fingerprint, "done": []}
            self._write_state()
        else:
            self.state = state

    def _read_state(self) -> dict | None:
        try:
            return json.loads((self.dir / "state.json").read_text())
        except (OSError, ValueError):
            return None

    def _write_state(self) -> None:
        atomic_write_json(self.dir / "state.json", self.state)

    def done(self, stage: str) -> bool:
        return stage in self.state["done"]

    def mark(self, stage: str) -> None:
        if stage not in self.state["done"]:
            self.state["done"].append(stage)
            self._write_state()

    def path(self, name: str) -> Path:
        return self.dir / name

    def save_array(self, name: str, arr: np.ndarray) -> None:
        with atomic_file(self.path(name), suffix=".npy") as tmp:
            np.save(tmp, arr)

    def save_set(self, name: str, g: Gaussians) -> None:
        with atomic_file(self.path(name), suffix=".safetensors") as tmp:
            save_file({k: v.detach().cpu().contiguous() for k, v in g.tensors().items()}, str(tmp))

    def load_array(self, name: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
        """A saved array, memory-mapped; ResumeMismatch (one line) when it is damaged or
        not of ``shape`` (-1: any length)."""
        try:
            a = np.load(self.path(name), mmap_mode="r")
        except (OSError, ValueError) as e:
            raise self.damaged(name, f"{type(e).__name__}: {e}") from None
        if shape is not None and (
            a.ndim != len(shape) or any(s not in (-1, n) for s, n in zip(shape, a.shape))
        ):
            raise self.damaged(name, f"shape {list(a.shape)}, expected {list(shape)}")
        return a

    def load_set(self, name: str) -> Gaussians | None:
        p = self.path(name)
        if not p.is_file():
            return None
        try:
            return Gaussians(**load_file(str(p)))
        except Exception as e:  # safetensors' own error, a wrong or missing tensor
            raise self.damaged(name, f"{type(e).__name__}: {e}") from None

    def damaged(self, name: str, why: str) -> ResumeMismatch:
        return ResumeMismatch(
            f"the checkpoint {self.dir / name} of the unfinished run is damaged ({why}); "
            "run without --resume to start over"
        )

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
