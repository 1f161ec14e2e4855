"""Lifting regularisers (eq. 5): L_geo against numpy's Pearson, L_sem through a tiny random
DINOv2 built here and loaded offline through the real loader, and the lifter hooks."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from engine.camera import View
from engine.errors import InputError
from engine.gaussians import Gaussians, rgb_to_sh0
from engine.lift.optimize import LiftConfig, Lifter
from engine.lift.raster import render_view
from engine.lift.refine import RefineConfig
from engine.lift.regularizers import (
    DinoCLS,
    RegularizerConfig,
    Regularizers,
    jitter_radius,
    jittered,
    pearson_loss,
)
from engine.lift.solve import SolveConfig
from tests.conftest import textured_equirect

transformers = pytest.importorskip("transformers")


def test_pearson_loss_matches_numpy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 16))
    y = 0.6 * x + rng.normal(size=(12, 16))
    want = 1 - np.corrcoef(x.ravel(), y.ravel())[0, 1]
    got = pearson_loss(torch.from_numpy(x), torch.from_numpy(y))
    assert abs(float(got) - want) < 1e-9
    mask = rng.random((12, 16)) > 0.4
    want_m = 1 - np.corrcoef(x[mask], y[mask])[0, 1]
    got_m = pearson_loss(torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(mask))
    assert abs(float(got_m) - want_m) < 1e-9
    # invariant to scale and offset; 2 for a reversed relation; 0 for a constant target
    assert float(pearson_loss(torch.from_numpy(3 * x + 7), torch.from_numpy(x))) < 1e-9
    assert abs(float(pearson_loss(torch.from_numpy(-x), torch.from_numpy(x))) - 2) < 1e-9
    assert float(pearson_loss(torch.from_numpy(x), torch.full((12, 16), 4.0))) == 0.0


def test_jitter_schedule_and_camera_displacement():
    cfg = RegularizerConfig()
    radii = [jitter_radius(f, cfg) for f in (0.1, 0.54, 0.6, 0.7, 0.95, 1.0)]
    assert radii == [0.0, 0.05, 0.05, 0.1, 0.2, 0.2]
    rng = random.Random(0)
    v = View(10.0, 5.0, 90.0, 8, 8)
    moved = [jittered(v, 0.1, rng) for _ in range(200)]
    pos = np.array([m.position for m in moved])
    assert np.abs(pos).max() <= 0.1 and np.abs(pos).max() > 0.09
    assert all(m.yaw_deg == 10.0 and m.pitch_deg == 5.0 for m in moved)


def _tiny_dino(folder):
    cfg = transformers.Dinov2Config(
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        image_size=28,
        patch_size=14,
    )
    torch.manual_seed(0)
    model = transformers.Dinov2Model(cfg)
    model.save_pretrained(folder)
    return model.eval()


@pytest.fixture(scope="module")
def dino_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dino")
    _tiny_dino(folder)
    return folder


def test_dino_cls_loads_offline_and_matches_direct_forward(tmp_path):
    model = _tiny_dino(tmp_path / "dino")
    cls = DinoCLS(str(tmp_path / "dino"), size=28)
    imgs = torch.rand(2, 20, 20, 3, generator=torch.Generator().manual_seed(1))
    x = torch.nn.functional.interpolate(imgs.permute(0, 3, 1, 2), size=(28, 28), mode="bilinear")
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        want = model(pixel_values=(x - mean) / std).pooler_output
    torch.testing.assert_close(cls(imgs), want, rtol=1e-4, atol=1e-5)
    with pytest.raises(InputError, match="without L_sem"):
        DinoCLS(str(tmp_path / "missing"))


def _disc_scene(n: int = 300) -> Gaussians:
    """Gaussians on a sphere of radius 3 in front of the camera, random colours."""
    g = torch.Generator().manual_seed(0)
    d = torch.randn(n, 3, generator=g)
    d[:, 2] = -d[:, 2].abs() - 1.0
    d = d / d.norm(dim=1, keepdim=True)
    means = 3.0 * d * (1 + 0.2 * torch.rand(n, 1, generator=g))
    quats = torch.tensor([[1.0, 0, 0, 0]]).expand(n, 4).clone()
    rgb = torch.rand(n, 3, generator=g)
    return Gaussians(
        means, quats, torch.full((n, 3), -1.5), torch.full((n,), 2.0), rgb_to_sh0(rgb)[:, None]
    )


def test_regularizer_loss_weights_once_and_has_gradients(dino_folder):
    g = _disc_scene()
    opac = g.opacities.clone().requires_grad_(True)
    sh = g.sh.clone().requires_grad_(True)
    gg = Gaussians(g.means, g.quats, g.log_scales, opac, sh)
    view = View(0.0, 0.0, 70.0, 24, 24)
    depth = np.tile(np.linspace(2.0, 5.0, 64, dtype=np.float32)[:, None], (1, 128))
    cfg = RegularizerConfig(lambda_geo=0.3, lambda_sem=0.7, dino_model=str(dino_folder))
    regs = Regularizers(cfg, depth, torch.device("cpu"))
    render = render_view(gg, view, background=torch.zeros(3), with_depth=True)
    geo = float(regs.geo(render, 0, view).detach())
    assert 0.0 <= geo <= 2.0
    # before the first jitter milestone only L_geo counts, with its weight applied once
    total = regs.loss(gg, view, 0, 0.1, render)
    assert abs(float(total.detach()) - 0.3 * geo) < 1e-6
    regs.rng = random.Random(5)
    sem = float(regs.sem(gg, view, 0.2).detach())
    regs.rng = random.Random(5)
    total = regs.loss(gg, view, 0, 0.95, render)
    assert abs(float(total.detach()) - (0.3 * geo + 0.7 * sem)) < 1e-5
    total.backward()
    assert opac.grad is not None and float(opac.grad.abs().sum()) > 0
    assert sh.grad is not None and float(sh.grad.abs().sum()) > 0
    # the same camera (no displacement) gives L_sem = 0: the reference is the render itself
    assert float(regs.sem(gg, view, 0.0).detach()) < 1e-6


def test_lifter_runs_with_regularizers(dino_folder):
    pano = textured_equirect(32, 64, seed=2)
    frames = np.stack([pano, np.roll(pano, 1, axis=1)])
    weight = np.zeros((32, 64), np.float32)
    weight[6:14, 10:40] = 1.0
    frames[:, weight == 0] = pano[weight == 0]
    lat = (0.5 - (np.arange(32) + 0.5) / 32) * np.pi
    depth = np.repeat((3.0 + np.sin(lat))[:, None], 64, 1).astype(np.float32)[None].repeat(2, 0)
    regs = RegularizerConfig(lambda_geo=0.05, lambda_sem=0.05, dino_model=str(dino_folder))
    cfg = LiftConfig(
        solve=SolveConfig(view_sets=1, iters=10),
        refine=RefineConfig(passes=1, dynamic_passes=1),
        regularizers=regs,
    )
    out = Lifter(cfg).run(frames, depth, weight)
    assert len(out.dynamic) == 2 and np.isfinite(out.metrics["psnr_train"])


def _cli_inputs(folder):
    from PIL import Image

    Image.fromarray(textured_equirect(128, 256, seed=5)).save(folder / "pano.png")
    mask = np.zeros((128, 256), np.uint8)
    mask[16:50, 40:220] = 255
    Image.fromarray(mask).save(folder / "mask.png")
    return ["generate", str(folder / "pano.png"), "--mask", str(folder / "mask.png")]


def test_generate_with_dino_model_end_to_end(dino_folder, tmp_path, capsys):
    """`generate --dino-model` switches L_sem on through the real CLI and config path."""
    import json

    from engine import cli, config

    cfg = config.build_config("preview", dino_model=str(dino_folder))
    assert cfg.lift.regularizers.dino_model == str(dino_folder)
    assert config.build_config("preview").lift.regularizers.dino_model is None
    argv = _cli_inputs(tmp_path) + ["--dino-model", str(dino_folder), "--preset", "preview"]
    out = tmp_path / "run"
    assert cli.main([*argv, "--frames", "2", "--out", str(out)]) == 0, capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    assert report["static_max_error"] == 0 and np.isfinite(report["psnr_train"])


def test_generate_with_missing_dino_model_exit_2(tmp_path, capsys):
    from engine import cli

    out = tmp_path / "run"
    argv = _cli_inputs(tmp_path) + ["--dino-model", str(tmp_path / "nowhere"), "--out", str(out)]
    assert cli.main(argv) == 2
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: no DINOv2 weights")
    assert "nowhere" in lines[0] and "drop --dino-model" in lines[0]
    assert not out.exists()
    # configs without weights, or weights of another kind: refused as early, nothing written
    wrong = tmp_path / "bert"
    wrong.mkdir()
    (wrong / "config.json").write_text('{"model_type": "bert"}')
    for reason in ("no weight file", "is a bert, not DINOv2"):
        argv = _cli_inputs(tmp_path) + ["--dino-model", str(wrong), "--out", str(out)]
        assert cli.main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and reason in err[0] and "drop --dino-model" in err[0], err
        assert not out.exists()
        (wrong / "model.safetensors").write_bytes(b"")


def test_pearson_loss_is_scale_free_for_small_depth_differences():
    """Correlation does not depend on units: depths that vary by millimetres correlate as
    they do in metres (the normalisation is the product of the two spreads, unclamped)."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(12, 16))
    y = 0.6 * x + rng.normal(size=(12, 16))
    want = 1 - np.corrcoef(x.ravel(), y.ravel())[0, 1]
    got = pearson_loss(torch.from_numpy(1e-3 * x + 4), torch.from_numpy(1e-3 * y + 4))
    assert abs(float(got) - want) < 1e-6


def test_sem_is_one_minus_the_cosine_of_dino_cls_features(dino_folder):
    """Reference: the DINOv2 CLS features of the render at the view and at the camera the
    same seeded jitter moves to, compared by their cosine (torch's, on the raw features)."""
    import dataclasses

    from engine.lift.regularizers import jittered

    g = _disc_scene()
    view = View(10.0, 5.0, 70.0, 24, 24)
    cfg = RegularizerConfig(lambda_geo=0.0, lambda_sem=1.0, dino_model=str(dino_folder))
    regs = Regularizers(cfg, None, torch.device("cpu"))
    regs.rng = random.Random(3)
    got = float(regs.sem(g, view, 1.5))
    small = dataclasses.replace(view, height=cfg.dino_size, width=cfg.dino_size)
    moved = jittered(small, 1.5, random.Random(3))
    bg = torch.zeros(3)
    feats = [regs.dino(render_view(g, v, background=bg).rgb[None]) for v in (small, moved)]
    a, b = (f.reshape(-1).double() for f in feats)
    want = 1.0 - float(a @ b / (a.norm() * b.norm()))
    assert want > 1e-5  # the camera moved: the features differ
    assert got == pytest.approx(want, rel=1e-2, abs=1e-7)
