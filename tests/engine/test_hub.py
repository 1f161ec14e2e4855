"""Model lookup without the network: local folders and a real (temporary) HF cache."""

from __future__ import annotations

import json

import pytest

from engine import hub
from engine.errors import InputError


def test_local_folder_with_marker(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"")
    probe = hub.locate(str(tmp_path))
    assert probe.available and probe.path == tmp_path.resolve()
    assert "local folder" in probe.reason


def test_configs_without_weights_or_a_broken_config_are_not_a_model(tmp_path):
    """An interrupted download, or the configs copied alone: refused where it is looked up,
    before anything runs, saying why."""
    (tmp_path / "config.json").write_text('{"model_type": "dinov2"}')
    probe = hub.locate(str(tmp_path))
    assert not probe.available and "no weight file" in probe.reason
    (tmp_path / "config.json").write_text("{")
    assert "not readable JSON" in hub.locate(str(tmp_path)).reason
    pipe = tmp_path / "pipe"
    for sub, name in (("unet", "config.json"), ("scheduler", "scheduler_config.json")):
        (pipe / sub).mkdir(parents=True)
        (pipe / sub / name).write_text("{}")
    (pipe / "stray").mkdir()  # not a component of the pipeline: not looked at
    (pipe / "stray" / "config.json").write_text("{}")
    index = {"_class_name": "StableVideoDiffusionPipeline", "unet": ["diffusers", "UNet"],
             "scheduler": ["diffusers", "EulerDiscreteScheduler"]}  # fmt: skip
    (pipe / "model_index.json").write_text(json.dumps(index))
    probe = hub.locate(str(pipe), marker="model_index.json")
    assert not probe.available and "in unet/" in probe.reason
    (pipe / "unet" / "diffusion_pytorch_model.safetensors").symlink_to(tmp_path / "gone")
    assert not hub.locate(str(pipe), marker="model_index.json").available  # a dangling link
    (pipe / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    (pipe / "unet" / "fp16").mkdir()  # weights one folder down, as some repositories keep them
    (pipe / "unet" / "fp16" / "diffusion_pytorch_model.fp16.safetensors").write_bytes(b"")
    assert hub.locate(str(pipe), marker="model_index.json").available  # schedulers have none


def test_local_folder_without_marker_and_file(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    probe = hub.locate(str(tmp_path), marker="model_index.json")
    assert not probe.available and "model_index.json" in probe.reason
    probe = hub.locate(str(tmp_path / "config.json"))
    assert not probe.available and "is a file" in probe.reason


def test_hub_id_found_in_cache(tmp_path, monkeypatch):
    # the real huggingface_hub cache layout: models--org--name/{refs/main, snapshots/<rev>/}
    cache = tmp_path / "hub"
    repo = cache / "models--acme--tiny-depth"
    rev = "0123456789abcdef0123456789abcdef01234567"
    snap = repo / "snapshots" / rev
    snap.mkdir(parents=True)
    (snap / "config.json").write_text(json.dumps({"model_type": "dpt"}))
    (snap / "model.safetensors").write_bytes(b"")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(rev)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))
    monkeypatch.setattr("huggingface_hub._snapshot_download.constants.HF_HUB_CACHE", str(cache))
    probe = hub.locate("acme/tiny-depth")
    assert probe.available and probe.path == snap
    missing = hub.locate("acme/other")
    assert not missing.available and "not in the Hugging Face cache" in missing.reason


def test_require_message_names_where_and_fallback(tmp_path):
    with pytest.raises(InputError) as e:
        hub.require(
            str(tmp_path / "nope"), "model_index.json", "video model", "use --animator flow"
        )
    msg = str(e.value)
    assert "no video model weights" in msg and "nope" in msg and "--animator flow" in msg


def test_offline_flag(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub.offline()
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert not hub.offline()
