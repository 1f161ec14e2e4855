"""The job file of ``main.py batch``: one entry per ``generate``, validated up front.

A job file is JSON::

    {"format": "pano4d-batch", "version": 1,
     "defaults": {"preset": "preview"},
     "jobs": [{"name": "park", "panorama": "park.png", "regions": "park_regions.json"},
              {"panorama": "lake.jpg", "mask": "water.png", "direction": 180, "speed": 3},
              {"name": "alps", "prompt": "misty alpine lake", "text_model": "sd-folder"}]}

(a bare list of jobs is accepted too). Each job takes the options of ``generate`` under the
names of :data:`FIELDS`; ``defaults`` apply to every job that does not set them. Relative paths
are relative to the job file's folder. A job's ``name`` (default: the panorama's file stem)
names its output folder ``DIR/NAME/``.

:func:`load_jobs` checks what can be checked without running anything: the structure, the
types, that the named files exist, the settings (preset, animator, frames ...) and that the
models are present. It raises :class:`InputError` naming the entry by its index. What only a
run finds (a corrupt image, a mask of another size, an empty region) fails that job alone,
with its one-line reason in batch.json.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from ..config import prepare
from ..errors import InputError
from ..fsutil import run_name

# name -> (accepted JSON types, is a path)
FIELDS: dict[str, tuple[tuple[type, ...], bool]] = {
    "name": ((str,), False),
    "panorama": ((str,), True),
    "mask": ((str,), True),
    "regions": ((str,), True),
    "region": ((list,), False),  # ["NAME: PROMPT", ...] as --region
    "seg_model": ((str,), False),
    "depth": ((str,), True),
    "depth_model": ((str,), False),
    "dino_model": ((str,), False),
    "preset": ((str,), False),
    "animator": ((str,), False),
    "model": ((str,), False),
    "frames": ((int,), False),
    "direction": ((int, float), False),
    "speed": ((int, float), False),
    "motion": ((str,), False),
    "prompt": ((str,), False),
    "negative_prompt": ((str,), False),
    "text_model": ((str,), False),
    "size": ((str,), False),  # "2048x1024", for text_model
    "seed": ((int,), False),
    "device": ((str,), False),
}
_TYPE_NAMES = {(int,): "whole number", (int, float): "number", (list,): "list", (str,): "string"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


@dataclass(frozen=True)
class Job:
    """One ``generate`` of a batch; ``spec`` holds its fields with absolute paths (JSON-able,
    so it travels to a worker process or a Ray task as it is)."""

    index: int
    name: str
    spec: dict

    @property
    def preset(self) -> str:
        from ..presets import DEFAULT_PRESET

        return self.spec.get("preset", DEFAULT_PRESET)


def load_jobs(path: Path) -> list[Job]:
    """The validated jobs of job file ``path`` (InputError: which entry, and why)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text("utf-8-sig"))
    except OSError as e:
        raise InputError(f"cannot read the job file {path}: {e.strerror or e}") from None
    except ValueError as e:
        raise InputError(f"the job file {path} is not valid JSON: {e}") from None
    defaults: dict = {}
    if isinstance(data, dict):
        if data.get("format", "pano4d-batch") != "pano4d-batch":
            raise InputError(f"{path} is not a Pano4D job file (format {data.get('format')!r})")
        if data.get("version", 1) != 1:
            raise InputError(f"{path}: job file version {data.get('version')} is not supported")
        extra = sorted(set(data) - {"format", "version", "defaults", "jobs"})
        if extra:
            raise InputError(f"{path}: unknown key(s) {', '.join(extra)}")
        defaults = data.get("defaults", {})
        if not isinstance(defaults, dict):
            raise InputError(f"{path}: 'defaults' must be an object")
        unknown = sorted(set(defaults) - set(FIELDS) - {"name"})
        if unknown:
            raise InputError(f"{path}: 'defaults': unknown key(s) {', '.join(unknown)}")
        data = data.get("jobs")
    if not isinstance(data, list) or not data:
        raise InputError(f"{path}: no jobs (expected a list of jobs, or an object with 'jobs')")
    jobs: list[Job] = []
    for i, entry in enumerate(data):
        try:
            if not isinstance(entry, dict):
                raise InputError("must be an object")
            spec = _checked({**_applying(defaults, entry), **entry}, path.parent)
        except InputError as e:
            raise InputError(f"job {i}{_label(entry)}: {e}") from None
        jobs.append(Job(i, spec["name"], spec))
    seen: dict[str, int] = {}
    for job in jobs:
        if job.name in seen:
            raise InputError(
                f"job {job.index} ('{job.name}'): the name is used by job {seen[job.name]} too; "
                "give each job its own 'name'"
            )
        seen[job.name] = job.index
    return jobs


MASK_ONLY = ("direction", "speed", "motion")  # how a --mask region moves
TEXT_ONLY = ("size", "seed")  # the panorama --text-model makes


def _applying(defaults: dict, entry: dict) -> dict:
    """The defaults that apply to this job: the --mask motion only to a job with a mask, the
    text model's size and seed only to a job that makes its panorama (a job's own keys are
    checked as generate checks its options)."""
    merged = {**defaults, **entry}
    return {
        k: v
        for k, v in defaults.items()
        if not (k in MASK_ONLY and "mask" not in merged)
        and not (k in TEXT_ONLY and "text_model" not in merged)
    }


def _label(entry) -> str:
    if isinstance(entry, dict) and isinstance(entry.get("name"), str):
        return f" ('{entry['name']}')"
    if isinstance(entry, dict) and isinstance(entry.get("panorama"), str):
        return f" ({entry['panorama']})"
    return ""


def _checked(entry: dict, folder: Path) -> dict:
    """The entry with types checked, paths made absolute and checked, and its settings
    checked by building its config and looking for its models."""
    unknown = sorted(set(entry) - set(FIELDS))
    if unknown:
        raise InputError(f"unknown key(s) {', '.join(unknown)} (known: {', '.join(FIELDS)})")
    spec = {}
    for key, value in entry.items():
        types, is_path = FIELDS[key]
        if isinstance(value, bool) or not isinstance(value, types):
            kind = _TYPE_NAMES.get(types, "string")
            raise InputError(f"'{key}' must be a {kind}, got {json.dumps(value)}")
        if is_path:
            p = Path(value).expanduser()
            p = p if p.is_absolute() else folder / p
            if not p.exists():
                raise InputError(f"{key} {value} does not exist ({p})")
            value = str(p.resolve())
        spec[key] = value
    if "region" in spec and not all(isinstance(r, str) for r in spec["region"]):
        raise InputError("'region' must be a list of 'NAME: PROMPT' strings")
    if "panorama" not in spec and "text_model" not in spec:
        raise InputError("needs a 'panorama', or a 'prompt' with a 'text_model' to make one")
    name = spec.get("name") or run_name(spec.get("panorama"), spec.get("prompt"))
    if not _NAME.match(name):
        raise InputError(
            f"name {name!r} cannot name a folder: use letters, digits, '.', '_' and '-'"
        )
    spec["name"] = name
    prepare(spec)  # the settings and the models, as generate checks them
    return spec
