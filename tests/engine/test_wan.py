"""The Wan image-to-video backend (flow matching) with tiny random components built here:
a word-level tokenizer, a 2-layer UMT5, the Wan VAE and transformer at toy sizes, saved with
save_pretrained and loaded back through the backend's real loader, offline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from engine.animate.denoiser import DenoiserConfig, PanoramicDenoiser
from engine.animate.wan import WanAnimator, WanConfig, WanModel, blend_loop, probe, require
from engine.errors import InputError
from engine.io import Panorama, Region
from engine.progress import Progress
from tests.conftest import textured_equirect
from tests.tiny_models import save_pipeline, word_tokenizer

WORDS = [
    "<pad>",
    "</s>",
    "<unk>",
    "a",
    "the",
    "sky",
    "cloud",
    "clouds",
    "drifting",
    "drift",
    "left",
    "right",
    "slowly",
    "water",
    "ripples",
    "lake",
    "tree",
    "trees",
    "leaves",
    "sway",
    "swaying",
    "misty",
    "alpine",
    "dawn",
    "pine",
    "forest",
    "negative",
]


def build_tiny_wan(folder: Path, image_encoder: bool = True, seed: int = 0) -> Path:
    """A WanImageToVideoPipeline folder of tiny random components (ENVIRONMENT.md)."""
    from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanTransformer3DModel
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        CLIPVisionModel,
        UMT5Config,
        UMT5EncoderModel,
    )

    tokenizer = word_tokenizer(WORDS)
    torch.manual_seed(seed)
    umt5 = UMT5Config(vocab_size=len(WORDS), d_model=32, d_kv=8, d_ff=37, num_layers=2,
                      num_heads=4, relative_attention_num_buckets=8)  # fmt: skip
    parts = {
        "tokenizer": tokenizer,
        "text_encoder": UMT5EncoderModel(umt5),
        "vae": AutoencoderKLWan(
            base_dim=3,
            z_dim=16,
            dim_mult=[1, 1, 1, 1],
            num_res_blocks=1,
            temperal_downsample=[False, True, True],
        ),  # fmt: skip
        "scheduler": FlowMatchEulerDiscreteScheduler(shift=3.0),
        "transformer": WanTransformer3DModel(
            patch_size=(1, 2, 2),
            num_attention_heads=2,
            attention_head_dim=12,
            in_channels=36,
            out_channels=16,
            text_dim=32,
            freq_dim=256,
            ffn_dim=32,
            num_layers=2,
            cross_attn_norm=True,
            qk_norm="rms_norm_across_heads",
            rope_max_seq_len=32,
            image_dim=4 if image_encoder else None,
        ),  # fmt: skip
    }
    if image_encoder:
        vision = CLIPVisionConfig(hidden_size=4, projection_dim=4, num_hidden_layers=2,
                                  num_attention_heads=2, image_size=32, intermediate_size=16,
                                  patch_size=4)  # fmt: skip
        parts["image_encoder"] = CLIPVisionModel(vision)
        parts["image_processor"] = CLIPImageProcessor(crop_size=32, size=32)
    index = {"_class_name": "WanImageToVideoPipeline", "boundary_ratio": None,
             "expand_timesteps": False}  # fmt: skip
    for name in ("image_encoder", "image_processor", "transformer_2"):
        if name not in parts:
            index[name] = [None, None]
    return save_pipeline(folder, parts, index)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("wan")
    return {"i2v": build_tiny_wan(root / "i2v"), "noclip": build_tiny_wan(root / "noclip", False)}


FAST = dict(steps=3, guidance=5.0, negative_prompt="negative", max_sequence_length=16,
            device="cpu", view_size=64, two_pass=False)  # fmt: skip


def test_probe_names_what_is_missing_and_the_fallback(tmp_path, tiny):
    assert probe(str(tiny["i2v"])).available
    with pytest.raises(InputError, match="no video model weights.*nope.*--animator flow"):
        require(str(tmp_path / "nope"))
    other = tmp_path / "other"
    other.mkdir()
    for c in ("tokenizer", "text_encoder", "vae", "transformer", "scheduler"):
        (other / c).mkdir()
    (other / "model_index.json").write_text(json.dumps({"_class_name": "WanPipeline"}))
    p = probe(str(other))
    assert not p.available and "WanPipeline" in p.reason and "image-to-video" in p.reason


@pytest.mark.parametrize("kind", ["i2v", "noclip"])
def test_equirect_mode_is_the_diffusers_wan_pipeline(tiny, kind):
    """Reference: diffusers' own WanImageToVideoPipeline on the same components, image,
    prompts and initial latents. In equirect mode with nothing masked the Panoramic
    Denoiser is ordinary flow-matching sampling, so the latents must agree."""
    from diffusers import WanImageToVideoPipeline

    cfg = WanConfig(model=str(tiny[kind]), prompt="clouds drifting left", frames=9, **FAST)
    model = WanModel.load(cfg, torch.device("cpu"))
    pipe = WanImageToVideoPipeline(**{k: v for k, v in model.pipe.components.items()})
    rgb = textured_equirect(32, 64, seed=4)
    dcfg = DenoiserConfig(steps=3, mode="equirect", two_pass=False, pin_first_frame=False)
    noise = torch.randn(1, 3, 16, 4, 8, generator=torch.Generator().manual_seed(dcfg.seed))
    ref = pipe(
        image=Image.fromarray(rgb), prompt=cfg.prompt, negative_prompt="negative", height=32,
        width=64, num_frames=9, num_inference_steps=3, guidance_scale=5.0,
        max_sequence_length=16, latents=noise.permute(0, 2, 1, 3, 4).clone(),
        output_type="latent",
    ).frames[0].permute(1, 0, 2, 3)  # fmt: skip  # [T', C, h, w]
    image = torch.from_numpy(rgb).permute(2, 0, 1).float() / 127.5 - 1
    got = PanoramicDenoiser(model, dcfg).run(image, torch.ones(32, 64), 3)
    torch.testing.assert_close(got, ref, atol=2e-4, rtol=1e-3)
    assert float(ref.std()) > 0.1


def test_views_take_the_prompt_of_the_region_they_see_most(tiny):
    from engine.camera import View

    h, w = 32, 64
    sky = np.zeros((h, w), np.float32)
    sky[:10] = 1
    lake = np.zeros((h, w), np.float32)
    lake[22:] = 1
    cfg = WanConfig(model=str(tiny["i2v"]), prompt="misty alpine lake", **FAST)
    cfg = WanConfig(**{**cfg.__dict__, "region_prompts": ("clouds drift left", "ripples")})
    model = WanModel.load(
        cfg, torch.device("cpu"), torch.from_numpy(np.stack([sky, lake]))[:, None]
    )
    up, down, side = View(0, 80, 90, 8, 8), View(0, -80, 90, 8, 8), View(90, 0, 40, 8, 8)
    prompts = model.view_prompts([up, down, side])
    assert prompts[0] == "misty alpine lake, clouds drift left"
    assert prompts[1] == "misty alpine lake, ripples"
    assert prompts[2] == "misty alpine lake"  # sees neither region


def test_blend_loop_moves_the_last_frames_towards_the_first():
    lat = torch.randn(5, 2, 3, 3, generator=torch.Generator().manual_seed(0))
    out = blend_loop(lat, span=2)
    torch.testing.assert_close(out[:3], lat[:3])
    torch.testing.assert_close(out[3], lat[3] * 2 / 3 + lat[0] / 3)
    torch.testing.assert_close(out[4], lat[4] / 3 + lat[0] * 2 / 3)


def test_wan_animator_end_to_end_static_pixels_bit_identical(tiny):
    rgb = textured_equirect(64, 128, seed=2)
    band = np.zeros((64, 128), bool)
    band[8:24] = True  # round the whole sky: crosses the seam
    regions = [Region("sky", band, 180.0, 5.0, prompt="clouds drifting left")]
    cfg = WanConfig(model=str(tiny["i2v"]), prompt="misty alpine lake", frames=9, **FAST)
    calls = []
    anim = WanAnimator(cfg)
    video = anim.run(
        Panorama(rgb, None, "t"), regions, Progress("animate", lambda s, f, m: calls.append((f, m)))
    )
    assert video.frames.shape == (9, 64, 128, 3)
    static = video.weight <= 0
    assert np.array_equal(
        video.frames[:, static], np.broadcast_to(rgb[static], (9, static.sum(), 3))
    )
    assert np.array_equal(video.frames[0], rgb)
    assert np.abs(video.frames[1:, band].astype(int) - rgb[band]).mean() > 1  # it animates
    assert sum("step" in m for _, m in calls) >= 3 and any("tile" in m for _, m in calls)
    assert [f for f, _ in calls] == sorted(f for f, _ in calls)
    assert anim.stats.steps == 3 and anim.stats.noise_unfilled == 0


def test_frame_count_must_suit_the_vae():
    with pytest.raises(InputError, match="4k \\+ 1 frames"):
        WanAnimator(WanConfig(frames=8))


def test_cli_generate_with_wan_regions_prompts_and_refusals(tiny, tmp_path, capsys):
    from engine import cli

    Image.fromarray(textured_equirect(128, 256, seed=3)).save(tmp_path / "pano.png")
    mask = np.zeros((128, 256), np.uint8)
    mask[8:40] = 255
    Image.fromarray(mask).save(tmp_path / "sky.png")
    doc = {"format": "pano4d-regions", "version": 1, "regions": [
        {"name": "sky", "mask": "sky.png", "prompt": "clouds drifting left"}]}  # fmt: skip
    (tmp_path / "regions.json").write_text(json.dumps(doc))
    base = ["generate", str(tmp_path / "pano.png"), "--regions", str(tmp_path / "regions.json")]
    out = tmp_path / "run"
    argv = [*base, "--animator", "wan", "--model", str(tiny["i2v"]), "--prompt", "misty lake"]
    code = cli.main([*argv, "--preset", "preview", "--frames", "5", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 0, err
    report = json.loads((out / "report.json").read_text())
    assert report["frames"] == 5 and report["static_max_error"] == 0
    meta = json.loads((out / "scene" / "manifest.json").read_text())
    text = json.dumps(meta)
    assert "misty lake" in text and "clouds drifting left" in text
    # refusals: one line, exit 2, nothing written
    for extra, words in (
        (["--animator", "wan", "--model", str(tmp_path / "none")], "no video model weights"),
        (["--animator", "wan", "--model", str(tiny["i2v"]), "--frames", "8"], "4k + 1 frames"),
        (["--prompt", "clouds"], "--animator wan"),
    ):
        dest = tmp_path / "refused"
        code = cli.main([*base, *extra, "--out", str(dest)])
        lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
        assert code == 2 and len(lines) == 1 and words in lines[0], lines
        assert not dest.exists()
