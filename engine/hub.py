"""Finding model weights without the network: a local folder or the Hugging Face cache.

Every model-backed stage (diffusers video models, transformers depth and DINOv2) names its
weights by a *spec*: a local folder, or a Hugging Face hub id such as
``stabilityai/stable-video-diffusion-img2vid-xt``. :func:`locate` resolves a spec to a local
folder without downloading anything (the cache is only read), and says where it looked when
nothing is there, so the CLI and the app can tell the user which weightless fallback runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError


@dataclass(frozen=True)
class ModelProbe:
    """What :func:`locate` found for one spec.

    spec: what the user asked for (a folder or a hub id)
    path: the local folder holding the weights, None when they are not here
    reason: one human-readable line: where they were found, or where we looked
    """

    spec: str
    path: Path | None
    reason: str

    @property
    def available(self) -> bool:
        return self.path is not None


@contextlib.contextmanager
def quiet_dtype_notice() -> Iterator[None]:
    """Newer diffusers deprecate ``from_pretrained(torch_dtype=)`` for ``dtype=``; the
    versions Pano4D supports (>= 0.35) all take ``torch_dtype``, so it is passed, without a
    FutureWarning on every load."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r".*`torch_dtype` is deprecated", category=FutureWarning
        )
        yield


def offline() -> bool:
    """True when the Hugging Face hub must not be contacted (HF_HUB_OFFLINE set)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def hf_cache_dir() -> Path:
    """The hub cache folder huggingface_hub reads (HF_HUB_CACHE / HF_HOME respected)."""
    try:
        from huggingface_hub.constants import HF_HUB_CACHE

        return Path(HF_HUB_CACHE)
    except ImportError:  # pragma: no cover - huggingface_hub comes with diffusers
        home = os.environ.get("HF_HOME", str(Path.home() / ".cache" / "huggingface"))
        return Path(home) / "hub"


def _looks_like_hub_id(spec: str) -> bool:
    parts = spec.split("/")
    return len(parts) == 2 and all(parts) and not spec.startswith((".", "~", "/"))


WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".msgpack", ".h5", ".gguf")


def missing_weights(folder: Path, marker: str) -> str | None:
    """Why ``folder`` cannot be loaded although it has ``marker``, or None: the marker is
    not JSON, or a model in it has its config but no weight file (an interrupted download, a
    copy of the configs alone). A diffusers pipeline (``model_index.json``) is checked per
    component: every subfolder with a ``config.json`` (a model, not a scheduler or a
    tokenizer) must hold weights."""
    try:
        doc = json.loads((folder / marker).read_text())
    except (OSError, ValueError) as e:
        return f"its {marker} is not readable JSON ({type(e).__name__})"
    if marker == "config.json":
        models = [folder]
    else:  # the components model_index.json lists that are models (they have a config.json)
        listed = [k for k, v in doc.items() if not k.startswith("_") and isinstance(v, list)]
        models = [folder / k for k in listed if (folder / k / "config.json").is_file()]
    for model in models:
        weights = (f for f in model.rglob("*") if f.name.endswith(WEIGHT_SUFFIXES))
        if not any(f.is_file() for f in weights):  # a dangling cache link is no file
            where = "" if model == folder else f" in {model.name}/"
            return (
                f"no weight file{where} (*.safetensors, *.bin, ...): only configs; "
                "is the download complete?"
            )
    return None


def locate(spec: str, marker: str = "config.json") -> ModelProbe:
    """Resolve ``spec`` to a local folder that contains ``marker`` (``config.json`` for a
    transformers model, ``model_index.json`` for a diffusers pipeline).

    A path that exists is used as is; otherwise a hub id is looked up in the local cache
    only (never downloaded here: weights are fetched by the user, e.g. with
    ``huggingface-cli download``)."""
    path = Path(spec).expanduser()
    if path.exists():
        if not path.is_dir():
            return ModelProbe(spec, None, f"{spec} is a file; a model is a folder")
        if not (path / marker).is_file():
            return ModelProbe(spec, None, f"{spec} has no {marker}; is it a model folder?")
        why = missing_weights(path, marker)
        if why:
            return ModelProbe(spec, None, f"{spec}: {why}")
        return ModelProbe(spec, path.resolve(), f"local folder {path.resolve()}")
    if not _looks_like_hub_id(spec):
        return ModelProbe(spec, None, f"no folder {spec}")
    cache = hf_cache_dir()
    try:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(spec, local_files_only=True))
    except Exception:  # LocalEntryNotFoundError, a malformed id, a broken cache entry ...
        return ModelProbe(spec, None, f"{spec} is not in the Hugging Face cache ({cache})")
    if not (folder / marker).is_file():
        return ModelProbe(spec, None, f"the cached {spec} ({folder}) has no {marker}")
    why = missing_weights(folder, marker)
    if why:
        return ModelProbe(spec, None, f"the cached {spec} ({folder}): {why}")
    return ModelProbe(spec, folder, f"Hugging Face cache {folder}")


def require(spec: str, marker: str, what: str, fallback: str) -> Path:
    """The folder of ``spec``, or an InputError that says where we looked and what to use
    instead: ``"no <what> weights: <reason>; <fallback>"``."""
    probe = locate(spec, marker)
    if probe.path is None:
        raise InputError(f"no {what} weights: {probe.reason}; {fallback}")
    return probe.path


def json_field(path: Path, key: str) -> str:
    """``key`` of the JSON object in ``path`` (a model's config.json or model_index.json) as
    text; "" when the file is missing, unreadable or not an object."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return ""
    return str(doc.get(key, "")) if isinstance(doc, dict) else ""
