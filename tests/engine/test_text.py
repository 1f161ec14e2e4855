"""Text to panorama with a tiny random Stable Diffusion pipeline built here: ordinary
sampling against diffusers' own StableDiffusionPipeline, the sphere mode's seam, and the
command line (--prompt, --text-model, --size, refusals)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from engine.animate.denoiser import DenoiserConfig, PanoramicDenoiser
from engine.errors import InputError
from engine.metrics import seam_discontinuity
from engine.text import TextPanoConfig, generate_panorama, load_model, probe, require
from tests.tiny_models import build_tiny_sd


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_sd(tmp_path_factory.mktemp("sd") / "sd")


def test_probe_and_refusals_name_what_is_needed(tmp_path, tiny):
    assert probe(str(tiny)).available
    with pytest.raises(InputError, match="needs --text-model"):
        require(None)
    with pytest.raises(InputError, match="no text-to-image model weights.*nope"):
        require(str(tmp_path / "nope"))
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    (wrong / "model_index.json").write_text(json.dumps({"_class_name": "WanPipeline"}))
    assert "WanPipeline" in probe(str(wrong)).reason
    with pytest.raises(InputError, match="W = 2 H"):
        TextPanoConfig(model=str(tiny), prompt="lake", size=(64, 64)).check()


def test_equirect_mode_is_the_diffusers_sd_pipeline(tiny):
    """Reference: StableDiffusionPipeline on the same components, prompt and latents (CFG on)."""
    from diffusers import StableDiffusionPipeline

    cfg = TextPanoConfig(model=str(tiny), prompt="misty alpine lake", negative_prompt="blur",
                         guidance=6.0, device="cpu")  # fmt: skip
    model = load_model(cfg, torch.device("cpu"))
    pipe = StableDiffusionPipeline(**model.pipe.components)
    dcfg = DenoiserConfig(steps=4, mode="equirect", two_pass=False, pin_first_frame=False)
    noise = torch.randn(1, 1, 4, 8, 16, generator=torch.Generator().manual_seed(dcfg.seed))
    ref = pipe(
        "misty alpine lake", height=32, width=64, num_inference_steps=4, guidance_scale=6.0,
        negative_prompt="blur", latents=noise[:, 0].clone(), output_type="latent",
    ).images  # fmt: skip  # [1, C, h, w]
    got = PanoramicDenoiser(model, dcfg).run(torch.zeros(3, 32, 64), torch.ones(32, 64), 1)
    torch.testing.assert_close(got, ref, atol=1e-4, rtol=1e-3)
    assert float(ref.std()) > 0.1


def test_sphere_panorama_views_agree_and_the_seam_is_continuous(tiny):
    """Fused on the sphere, the views agree with the consensus (unlike views denoised on
    their own and stitched) and the latent's seam step is like any column step."""
    stats = {}
    for mode in ("sphere", "independent"):
        cfg = TextPanoConfig(model=str(tiny), prompt="pine forest", size=(64, 128), steps=4,
                             view_size=64, two_pass=False, mode=mode, device="cpu")  # fmt: skip
        rgb, stats[mode], _ = generate_panorama(cfg)
        assert rgb.shape == (64, 128, 3) and rgb.dtype == np.uint8
    assert stats["sphere"].consistency < 0.5 * stats["independent"].consistency
    model = load_model(cfg, torch.device("cpu"))
    den = PanoramicDenoiser(model, DenoiserConfig(steps=4, two_pass=False, pin_first_frame=False))
    lat = den.run(torch.zeros(3, 64, 128), torch.ones(64, 128), 1)[0].permute(1, 2, 0).numpy()
    assert seam_discontinuity(lat)["ratio"] < 1.3


def test_two_pass_refines_at_full_resolution(tiny):
    cfg = TextPanoConfig(model=str(tiny), prompt="lake", size=(128, 256), steps=4, view_size=64,
                         device="cpu")  # fmt: skip
    calls = []
    from engine.progress import Progress

    rgb, stats, notes = generate_panorama(cfg, Progress("text", lambda s, f, m: calls.append(m)))
    assert rgb.shape == (128, 256, 3) and len(stats.views) == 2
    assert any(m.startswith("pass 2/2") for m in calls) and notes == []


def test_cli_makes_the_panorama_from_text_and_goes_on(tiny, tmp_path, capsys):
    from PIL import Image

    from engine import cli

    out = tmp_path / "run"
    argv = ["generate", "--prompt", "misty alpine lake at dawn", "--text-model", str(tiny)]
    argv += ["--size", "256x128", "--seed", "3", "--preset", "preview", "--frames", "2"]
    code = cli.main([*argv, "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    pano = np.asarray(Image.open(out / "panorama.png"))
    assert pano.shape == (128, 256, 3) and pano.std() > 1
    report = json.loads((out / "report.json").read_text())
    assert report["source_size"] == "256x128" and "text" in report["timings_s"]
    assert report["static_max_error"] == 0
    # --resume reuses the panorama made from the same settings
    before = (out / "panorama.png").stat().st_mtime_ns
    assert cli.main([*argv, "--out", str(out), "--resume"]) == 0
    assert (out / "panorama.png").stat().st_mtime_ns == before


SMALL = ["--size", "256x128", "--preset", "preview", "--frames", "2"]


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--prompt", "lake"], "give a panorama, or make one"),
        (["--prompt", "lake", "--text-model", "NOPE"], "no text-to-image model weights"),
        (["--text-model", "TINY"], "give the prompt too"),
        (["--prompt", "lake", "--text-model", "TINY", "--size", "100"], "--size must be"),
        (["--prompt", "lake", "--text-model", "TINY", "--size", "300x100"], "W = 2 H"),
        (
            ["--prompt", "lake", "--text-model", "TINY", "--region", "sky: drift"],
            "needs --seg-model",
        ),
        # what the loader would refuse after the panorama is made is refused before
        (["--prompt", "lake", "--text-model", "TINY", "--size", "128x64"], "256x128 to"),
        (["--prompt", "lake", "--text-model", "TINY", *SMALL, "--mask", "SQUARE"], "aspect"),
        (["--prompt", "lake", "--text-model", "TINY", *SMALL, "--depth", "DEPTH"], "frames"),
        (["--prompt", "lake", "--seed", "3"], "--seed sets the panorama --text-model makes"),
        (["--prompt", "lake", "--text-model", "TINY", *SMALL, "--regions", "FOUND"], "--seg-model"),
    ],
)
def test_cli_text_refusals_are_one_line_and_write_nothing(tiny, tmp_path, capsys, argv, words):
    from engine import cli

    Image.fromarray(np.full((100, 100), 255, np.uint8)).save(tmp_path / "square.png")
    np.save(tmp_path / "depth.npy", np.full((5, 128, 256), 3.0, np.float32))
    (tmp_path / "found.json").write_text(
        json.dumps({"format": "pano4d-regions", "version": 1,
                    "regions": [{"name": "sky", "mask_prompt": "the sky"}]})
    )  # fmt: skip
    names = {"FOUND": tmp_path / "found.json", "TINY": tiny, "NOPE": tmp_path / "nope", "SQUARE": tmp_path / "square.png",
             "DEPTH": tmp_path / "depth.npy"}  # fmt: skip
    argv = [str(names.get(a, a)) for a in argv]
    out = tmp_path / "refused"
    code = cli.main(["generate", *argv, "--out", str(out)])
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and words in lines[0], lines
    assert not out.exists()


def test_loading_prints_no_deprecation_notice_for_the_dtype(tiny):
    """diffusers' FutureWarning about ``torch_dtype`` (which every supported version takes)
    is not shown on each load."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_model(TextPanoConfig(model=str(tiny), prompt="lake"), torch.device("cpu"))
    assert not [w for w in caught if "torch_dtype" in str(w.message)]
