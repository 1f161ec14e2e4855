"""Text to panorama with the Stable Diffusion 3 family (a flow-matching DiT) from tiny random
pipeline folders built here: ordinary sampling against diffusers' own
StableDiffusion3Pipeline (with and without T5, with dynamic shifting), the VAE's shift,
the sphere mode, the command line and its refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from engine.animate.denoiser import DenoiserConfig, PanoramicDenoiser
from engine.errors import InputError
from engine.text import TextPanoConfig, generate_panorama, load_model, probe
from tests.tiny_models import build_tiny_sd3

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("sd3")
    return {
        "t5": build_tiny_sd3(root / "t5"),
        "clip": build_tiny_sd3(root / "clip", t5=False),
        "shifting": build_tiny_sd3(root / "shifting", dynamic_shift=True),
    }


@pytest.mark.parametrize("variant, size", [("t5", (32, 64)), ("clip", (32, 64)),
                                           ("shifting", (64, 128))])  # fmt: skip
def test_equirect_mode_is_the_diffusers_sd3_pipeline(tiny, variant, size):
    """Reference: StableDiffusion3Pipeline on the same components, prompt and latents (CFG
    on); the shifting variant's mu comes from the latent's token count in both."""
    from diffusers import StableDiffusion3Pipeline

    h, w = size
    cfg = TextPanoConfig(model=str(tiny[variant]), prompt="misty alpine lake",
                         negative_prompt="blur", guidance=6.0, view_size=128, device="cpu")  # fmt: skip
    model = load_model(cfg, CPU)
    pipe = StableDiffusion3Pipeline(**model.pipe.components)
    dcfg = DenoiserConfig(steps=4, mode="equirect", two_pass=False, pin_first_frame=False)
    noise = torch.randn(1, 1, 4, h // 4, w // 4, generator=torch.Generator().manual_seed(0))
    ref = pipe(
        "misty alpine lake", height=h, width=w, num_inference_steps=4, guidance_scale=6.0,
        negative_prompt="blur", latents=noise[:, 0].clone(), output_type="latent",
    ).images  # fmt: skip  # [1, C, h, w]
    got = PanoramicDenoiser(model, dcfg).run(torch.zeros(3, h, w), torch.ones(h, w), 1)
    torch.testing.assert_close(got, ref, atol=1e-4, rtol=1e-3)
    assert float(ref.std()) > 0.1


def test_schedule_shift_follows_the_token_count(tiny):
    cfg = TextPanoConfig(model=str(tiny["shifting"]), prompt="lake", view_size=128, device="cpu")
    model = load_model(cfg, CPU)
    small, large = model.schedule_kwargs((8, 8))["mu"], model.schedule_kwargs((32, 32))["mu"]
    assert small == pytest.approx(0.5) and large == pytest.approx(1.15)  # 16 and 256 tokens
    fixed = load_model(TextPanoConfig(model=str(tiny["t5"]), prompt="lake", view_size=128), CPU)
    assert fixed.schedule_kwargs((32, 32)) == {}


def test_vae_latents_are_shifted_then_scaled(tiny):
    """encode = (mode - shift) * scaling and decode inverts it, as SD3's pipeline does (one
    tile here, with 32 px / 8 latent columns of seam-wrapped context on each side)."""
    model = load_model(TextPanoConfig(model=str(tiny["t5"]), prompt="lake", view_size=128), CPU)
    vae = model.vae
    assert model.shift == pytest.approx(0.0609) and model.scaling == pytest.approx(1.5305)
    img = torch.rand(1, 3, 32, 64, generator=torch.Generator().manual_seed(1)) * 2 - 1
    wrapped = torch.cat([img[..., -32:], img, img[..., :32]], dim=-1)
    with torch.no_grad():
        raw = vae.encode(wrapped).latent_dist.mode()[..., 8:-8]
        lat = model.encode(img)
        torch.testing.assert_close(lat, (raw - 0.0609) * 1.5305, atol=1e-5, rtol=1e-4)
        z = torch.cat([lat[..., -8:], lat, lat[..., :8]], dim=-1)
        ref = vae.decode(z / vae.config.scaling_factor + vae.config.shift_factor).sample
    ref = ref[..., 32:-32].clamp(-1, 1)
    torch.testing.assert_close(model.decode(lat), ref, atol=1e-5, rtol=1e-4)


def test_sphere_panorama_views_agree_and_two_passes_run(tiny):
    stats = {}
    for mode in ("sphere", "independent"):
        cfg = TextPanoConfig(model=str(tiny["t5"]), prompt="pine forest", size=(64, 128),
                             steps=4, view_size=64, two_pass=False, mode=mode, device="cpu")  # fmt: skip
        rgb, stats[mode], _ = generate_panorama(cfg)
        assert rgb.shape == (64, 128, 3) and rgb.dtype == np.uint8
    assert stats["sphere"].consistency < 0.5 * stats["independent"].consistency
    cfg = TextPanoConfig(model=str(tiny["shifting"]), prompt="lake", size=(128, 256), steps=4,
                         view_size=64, device="cpu")  # fmt: skip
    rgb, stats2, _ = generate_panorama(cfg)
    assert rgb.shape == (128, 256, 3) and len(stats2.views) == 2 and rgb.std() > 1


def test_refusals_name_the_problem(tiny, tmp_path):
    assert probe(str(tiny["t5"])).available
    import shutil

    partial = shutil.copytree(tiny["clip"], tmp_path / "partial")
    shutil.rmtree(partial / "transformer")
    assert "lacks transformer/" in probe(str(partial)).reason
    with pytest.raises(InputError, match="no text-to-image model weights.*lacks transformer/"):
        load_model(TextPanoConfig(model=str(partial), prompt="lake", view_size=128), CPU)
    with pytest.raises(InputError, match="at most 512 px.*asked for 1024"):
        load_model(TextPanoConfig(model=str(tiny["t5"]), prompt="lake", view_size=1024), CPU)
    bad = shutil.copytree(tiny["clip"], tmp_path / "euler")
    sched = bad / "scheduler" / "scheduler_config.json"
    conf = json.loads(sched.read_text())
    conf["_class_name"] = "EulerDiscreteScheduler"
    sched.write_text(json.dumps(conf))
    index = json.loads((bad / "model_index.json").read_text())
    index["scheduler"] = ["diffusers", "EulerDiscreteScheduler"]
    (bad / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(InputError, match="needs FlowMatchEulerDiscreteScheduler"):
        load_model(TextPanoConfig(model=str(bad), prompt="lake", view_size=128), CPU)


def test_cli_makes_the_panorama_with_sd3_and_goes_on(tiny, tmp_path, capsys):
    from PIL import Image

    from engine import cli

    out = tmp_path / "run"
    argv = ["generate", "--prompt", "misty alpine lake at dawn", "--text-model", str(tiny["t5"])]
    argv += ["--size", "256x128", "--preset", "preview", "--frames", "2", "--out", str(out)]
    code = cli.main(argv)
    assert code == 0, capsys.readouterr().err
    pano = np.asarray(Image.open(out / "panorama.png"))
    assert pano.shape == (128, 256, 3) and pano.std() > 1
    assert json.loads((out / "report.json").read_text())["static_max_error"] == 0
