"""The diffusers Stable Video Diffusion backend with tiny random components built here,
saved with save_pretrained and loaded back through the backend's real loader, offline."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from engine import cli, config
from engine.animate import get_animator
from engine.animate.denoiser import DenoiserConfig, PanoramicDenoiser, latent_mask
from engine.animate.svd import SVDAnimator, SVDConfig, SVDModel, _work_size, probe, require
from engine.errors import InputError
from engine.io import Panorama, Region
from engine.metrics import seam_discontinuity, static_max_error
from engine.presets import PRESETS
from engine.progress import Progress
from engine.sphere import ViewSetConfig
from tests.conftest import textured_equirect


def build_tiny_svd(folder: Path, in_channels: int = 8, seed: int = 0) -> Path:
    """A Stable Video Diffusion pipeline folder of tiny random components (ENVIRONMENT.md):
    4-block VAE (latent scale 8), 2-block UNet, a small CLIP vision tower at 224 px."""
    from diffusers import (
        AutoencoderKLTemporalDecoder,
        EulerDiscreteScheduler,
        UNetSpatioTemporalConditionModel,
    )
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    parts = {
        "unet": UNetSpatioTemporalConditionModel(
            sample_size=8,
            in_channels=in_channels,
            out_channels=4,
            down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
            up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
            block_out_channels=(32, 64),
            addition_time_embed_dim=8,
            projection_class_embeddings_input_dim=24,
            layers_per_block=1,
            cross_attention_dim=32,
            num_attention_heads=(2, 4),
            num_frames=4,
        ),
        "vae": AutoencoderKLTemporalDecoder(
            block_out_channels=(32, 32, 32, 32),
            down_block_types=("DownEncoderBlock2D",) * 4,
            latent_channels=4,
            layers_per_block=1,
        ),
        "image_encoder": CLIPVisionModelWithProjection(
            CLIPVisionConfig(
                hidden_size=32,
                projection_dim=32,
                num_hidden_layers=2,
                num_attention_heads=4,
                image_size=224,
                patch_size=32,
                intermediate_size=37,
            )
        ),
        "feature_extractor": CLIPImageProcessor(crop_size=224, size=224),
        "scheduler": EulerDiscreteScheduler(  # SVD's own scheduler settings
            beta_schedule="scaled_linear",
            beta_start=0.00085,
            beta_end=0.012,
            prediction_type="v_prediction",
            use_karras_sigmas=True,
            sigma_min=0.002,
            sigma_max=700.0,
            timestep_spacing="leading",
            timestep_type="continuous",
            steps_offset=1,
        ),
    }
    for name, part in parts.items():
        part.save_pretrained(folder / name)
    index = {"_class_name": "StableVideoDiffusionPipeline", "_diffusers_version": "0.42.0"}
    for name, part in parts.items():
        lib = "transformers" if name in ("image_encoder", "feature_extractor") else "diffusers"
        index[name] = [lib, type(part).__name__]
    (folder / "model_index.json").write_text(json.dumps(index))
    return folder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Two checkpoints: SVD (8 input channels) and Animate-Anything's layout (9: + mask)."""
    root = tmp_path_factory.mktemp("svd")
    return {c: build_tiny_svd(root / f"svd{c}", c) for c in (8, 9)}


def _pano(h=64, w=128, seed=2):
    return Panorama(textured_equirect(h, w, seed), None, "test")


def _band(h=64, w=128, rows=slice(16, 44)):
    m = np.zeros((h, w), bool)
    m[rows] = True  # all the way round: crosses the seam
    return m


FAST = dict(frames=3, steps=3, view_batch=40, device="cpu", max_guidance=1.0)  # no CFG


def test_probe_and_missing_weights_name_where_and_the_fallback(tmp_path, tiny):
    assert probe(str(tiny[8])).available
    missing = probe(str(tmp_path / "nope"))
    assert not missing.available and "nope" in missing.reason
    with pytest.raises(InputError) as e:
        require(str(tmp_path / "nope"))
    msg = str(e.value)
    assert "no video model weights" in msg and "nope" in msg and "--animator flow" in msg
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "model_index.json").write_text("{}")
    (partial / "vae").mkdir()
    p = probe(str(partial))
    assert not p.available and "unet" in p.reason and "image_encoder" in p.reason
    with pytest.raises(InputError, match="Hugging Face cache"):
        require("acme/not-downloaded-svd")
    # an image (not video) diffusion checkpoint: refused up front with the reason
    import json
    import shutil

    image_model = tmp_path / "image-model"
    shutil.copytree(tiny[8], image_model)
    cfg_path = image_model / "unet" / "config.json"
    config = json.loads(cfg_path.read_text())
    config["_class_name"] = "UNet2DConditionModel"
    cfg_path.write_text(json.dumps(config))
    wrong = probe(str(image_model))
    assert not wrong.available and "UNet2DConditionModel" in wrong.reason
    with pytest.raises(InputError, match="not a video model"):
        require(str(image_model))


def test_loaded_model_steps_shapes_dtypes_and_the_mask_channel(tiny):
    cfg = SVDConfig(**{**FAST, "max_guidance": 3.0})  # with classifier-free guidance
    outs = {}
    for ch in (8, 9):
        model = SVDModel.load(str(tiny[ch]), cfg, torch.device("cpu"))
        assert not model.unet.training and model.dtype == torch.float32
        assert model.mask_channel == (ch == 9) and model.latent_scale == 8
        model.scheduler.set_timesteps(4)
        sig, ts = model.scheduler.sigmas, model.scheduler.timesteps
        assert len(sig) == 5 and float(sig[-1]) == 0 and bool((sig[:-1] > sig[1:]).all())
        crops = torch.rand(2, 3, 32, 32) * 2 - 1
        z = torch.randn(2, 3, 4, 4, 4) * float(sig[0])
        res = []
        for masks in (torch.zeros(2, 1, 4, 4), torch.ones(2, 1, 4, 4)):
            model.gen.manual_seed(5)  # the same noise augmentation for both masks
            model.condition(crops, masks, frames=3)
            assert model.emb.shape == (2, 1, 32) and model.img_lat.shape == (2, 4, 4, 4)
            res.append(model.denoise(z, float(sig[0]), ts[0], slice(0, 2)))
        assert res[0].shape == (2, 3, 4, 4, 4) and res[0].dtype == torch.float32
        assert torch.isfinite(res[0]).all()
        outs[ch] = res
        lat = model.encode(crops[:1])
        assert lat.shape == (1, 4, 4, 4)
        assert model.decode(lat.expand(3, -1, -1, -1)).shape == (3, 3, 32, 32)
    assert torch.equal(outs[8][0], outs[8][1])  # SVD ignores the mask ...
    assert not torch.allclose(outs[9][0], outs[9][1])  # ... Animate-Anything reads it


def test_equirect_mode_is_the_diffusers_pipeline(tiny):
    """Reference: diffusers' own StableVideoDiffusionPipeline on the same components, the
    same initial latents and image (224 px, so neither side resizes for CLIP). In equirect
    mode with nothing masked the Panoramic Denoiser is ordinary sampling: our
    preconditioning, guidance, conditioning and the scheduler-driven split state must
    reproduce the pipeline's latents."""
    import copy

    from diffusers import StableVideoDiffusionPipeline

    cfg = SVDConfig(**{**FAST, "max_guidance": 2.5, "noise_aug_strength": 0.0})
    model = SVDModel.load(str(tiny[8]), cfg, torch.device("cpu"))
    pipe = StableVideoDiffusionPipeline(
        vae=model.vae,
        image_encoder=model.encoder,
        unet=model.unet,
        scheduler=copy.deepcopy(model.scheduler),
        feature_extractor=model.processor,
    )
    image = torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    frames, steps = 2, 3
    dcfg = DenoiserConfig(steps=steps, mode="equirect", two_pass=False, pin_first_frame=False)
    den = PanoramicDenoiser(model, dcfg)
    # the denoiser's own initial noise: the first draw of its seeded generator
    noise = torch.randn(1, frames, 4, 28, 28, generator=torch.Generator().manual_seed(dcfg.seed))
    ref = pipe(
        image,
        height=224,
        width=224,
        num_frames=frames,
        num_inference_steps=steps,
        fps=cfg.fps_id,
        motion_bucket_id=cfg.motion_bucket_id,
        noise_aug_strength=0.0,
        min_guidance_scale=1.0,
        max_guidance_scale=2.5,
        latents=noise.clone(),
        output_type="latent",
    ).frames[0]  # [T, C, h, w]
    got = den.run(image[0] * 2 - 1, torch.ones(224, 224), frames)
    assert torch.allclose(got, ref, atol=1e-3, rtol=1e-3), float((got - ref).abs().max())
    assert float(ref.std()) > 0.1  # a real result, not two zeros


def test_panoramic_denoiser_with_svd_seam_and_view_consistency(tiny):
    """The fused latent is continuous across the seam and the views agree with it, unlike
    views denoised independently and stitched."""
    cfg = SVDConfig(**FAST)
    model = SVDModel.load(str(tiny[9]), cfg, torch.device("cpu"))
    image, weight = _work_size(_pano().rgb, _band().astype(np.float32), model.size_multiple)
    res = {}
    for mode in ("sphere", "independent"):
        dcfg = DenoiserConfig(steps=3, views=ViewSetConfig(size=512), view_batch=40, mode=mode)
        den = PanoramicDenoiser(model, dcfg)
        res[mode] = (den.run(image, weight, 3), den.stats)
    lat, stats = res["sphere"]
    assert lat.shape == (3, 4, 8, 16) and stats.noise_unfilled == 0 and stats.views == [20]
    mask = latent_mask(weight, 8) > 0
    moving = lat[1:, :, mask[:, 0]]  # rows of the band
    assert float((lat[1:] - lat[:1]).abs()[:, :, mask].mean()) > 0.05  # it animates
    assert moving.numel() > 0
    # seam: the step across the seam is like any step between neighbouring columns
    rows = mask[:, 0]
    steps = (lat[1:, :, rows, 1:] - lat[1:, :, rows, :-1]).abs().mean()
    seam = (lat[1:, :, rows, 0] - lat[1:, :, rows, -1]).abs().mean()
    assert float(seam) < 1.5 * float(steps)
    assert stats.consistency < 0.5 * res["independent"][1].consistency


def test_svd_animator_end_to_end_two_passes_static_pixels_bit_identical(tiny):
    """128 x 256: a low-resolution pass, decode -> upsample -> encode, then the refinement
    pass with its own views; the composite keeps every static pixel."""
    pano, mask = _pano(128, 256), _band(128, 256, slice(30, 90))
    regions = [Region("band", mask, 0.0, 2.0, feather_px=4)]
    animator = get_animator("svd")(SVDConfig(model=str(tiny[9]), **{**FAST, "steps": 2}))
    assert isinstance(animator, SVDAnimator)
    calls = []
    video = animator.run(pano, regions, Progress("animate", lambda s, f, m: calls.append(f)))
    assert animator.stats.views == [20, 20] and animator.stats.steps == 3  # 2 + 1 refining
    assert video.frames.shape == (3, 128, 256, 3) and video.frames.dtype == np.uint8
    assert np.array_equal(video.frames[0], pano.rgb)
    assert static_max_error(video.frames, pano.rgb, video.weight) == 0
    static = video.weight <= 0
    still = pano.rgb[static]
    assert np.array_equal(video.frames[:, static], np.broadcast_to(still, (3, *still.shape)))
    assert np.abs(video.frames[2][mask].astype(int) - pano.rgb[mask]).mean() > 2  # it moves
    assert seam_discontinuity(video.frames)["ratio"] < 2.0
    assert calls == sorted(calls) and len(calls) >= 3


@pytest.mark.slow  # the whole generate pipeline (lift and videos included): ~40 s idle
def test_cli_generate_with_svd_and_missing_weights(tiny, tmp_path, capsys, monkeypatch):
    from viewer.commands import register

    Image.fromarray(textured_equirect(128, 256, seed=3)).save(tmp_path / "pano.png")
    mask = _band(128, 256, slice(30, 90)).astype(np.uint8) * 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    base = ["generate", str(tmp_path / "pano.png"), "--mask", str(tmp_path / "mask.png")]
    base += ["--preset", "preview", "--frames", "3", "--animator", "svd"]
    # missing weights: exit 2, one line naming where it looked and the fallback, no output
    code = cli.main([*base, "--model", str(tmp_path / "none"), "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "none" in err and "--animator flow" in err and not (tmp_path / "x").exists()
    fast = {"steps": 1, "two_pass": False, "max_guidance": 1.0, "view_batch": 40}
    monkeypatch.setitem(PRESETS["preview"], "svd", fast)
    out = tmp_path / "run"
    code = cli.main([*base, "--model", str(tiny[9]), "--out", str(out)], plugins=[register])
    err = capsys.readouterr().err
    assert code == 0, err
    report = json.loads((out / "report.json").read_text())
    assert report["static_max_error"] == 0 and report["frames"] == 3
    cfg = config.build_config("preview", frames=3, animator="svd", model=str(tiny[9]))
    assert cfg.svd.steps == 1 and cfg.svd.frames == 3 and cfg.svd.model == str(tiny[9])
    assert config.build_config("preview", animator="svd").svd != cfg.svd  # fingerprinted


def test_composite_blends_the_decoded_video_by_the_feathered_weight():
    """Reference: out[t] = round(input + w (decoded - input)) per pixel (numpy), frame 0 and
    weight-0 pixels equal to the input bit for bit (the buffer holds the input already)."""
    from engine.animate.svd import composite

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    weight = np.zeros((6, 8), np.float32)
    weight[1:5, 2:7] = np.linspace(0.1, 1.0, 5)[None]
    video = torch.from_numpy(rng.uniform(-1, 1, (3, 3, 6, 8)).astype(np.float32))
    out = np.repeat(rgb[None], 3, axis=0)  # the animator's buffer starts as the input
    composite(rgb, weight, video, out, Progress("animate"))
    dec = (video.permute(0, 2, 3, 1).numpy() + 1) * 127.5
    want = np.rint(rgb + weight[None, ..., None] * (dec - rgb)).clip(0, 255).astype(np.uint8)
    want[0] = rgb
    np.testing.assert_array_equal(out, want)


def test_preview_preset_is_a_quick_check_covering_the_sphere(tiny):
    """--preset preview with a video model: one pass, few steps, few wide views that still
    cover the whole sphere; progress reports every step and every decoded tile."""
    from engine.config import build_config
    from engine.sphere import coverage, make_views

    cfg = build_config("preview", animator="svd", model=str(tiny[9]), device="cpu").svd
    den = cfg.denoiser()
    views = make_views(den.views)
    assert not den.two_pass and den.steps <= 12 and len(views) <= 8
    assert coverage(views, height=128).covered > 0.999
    calls = []
    pano, band = _pano(), _band()
    SVDAnimator(dataclasses.replace(cfg, frames=3)).run(
        pano,
        [Region("band", band, 0.0, 5.0)],
        Progress("animate", lambda s, f, m: calls.append((f, m))),
    )
    steps = {m for _, m in calls if "step" in m}
    assert len(steps) == den.steps  # every denoising step moves the bar
    assert any("tile" in m for _, m in calls)  # so does decoding
    fractions = [f for f, _ in calls]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
