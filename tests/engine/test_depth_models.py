"""Model-backed depth: tiny random DPT / Depth Anything models built here, saved with
save_pretrained and loaded through engine.depth.models offline; output conversion against
analytic geometry; `generate --depth-model` end to end through the CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from engine import cli
from engine.camera import View
from engine.depth.align import AlignConfig
from engine.depth.models import DepthModel, DepthModelConfig, probe, to_ray_depth
from engine.depth.stage import ModelDepthConfig, ModelDepthStage
from engine.errors import InputError
from tests.conftest import textured_equirect

transformers = pytest.importorskip("transformers")


def _tiny_dpt(folder):
    cfg = transformers.DPTConfig(
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=37,
        image_size=32,
        patch_size=8,
        neck_hidden_sizes=[8, 8, 16, 16],
        fusion_hidden_size=16,
        backbone_out_indices=[0, 1, 2, 3],
    )
    torch.manual_seed(0)
    model = transformers.DPTForDepthEstimation(cfg)
    model.save_pretrained(folder)
    transformers.DPTImageProcessor(
        size={"height": 32, "width": 32},
        keep_aspect_ratio=False,
        image_mean=[0.5] * 3,
        image_std=[0.5] * 3,
    ).save_pretrained(folder)
    return model.eval()


def _tiny_depth_anything(folder, metric: bool = False):
    backbone = transformers.Dinov2Config(
        hidden_size=16,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=32,
        image_size=28,
        patch_size=14,
        out_indices=[1, 2, 3, 4],
        reshape_hidden_states=False,
        apply_layernorm=True,
    )
    cfg = transformers.DepthAnythingConfig(
        backbone_config=backbone,
        neck_hidden_sizes=[8, 8, 16, 16],
        fusion_hidden_size=16,
        head_hidden_size=8,
        reassemble_hidden_size=16,
        patch_size=14,
        depth_estimation_type="metric" if metric else "relative",
        max_depth=20,
    )
    torch.manual_seed(1)
    model = transformers.AutoModelForDepthEstimation.from_config(cfg)
    model.save_pretrained(folder)
    # Depth Anything's published processor: DPT's, keeping the aspect, multiples of 14
    transformers.DPTImageProcessor(
        size={"height": 28, "width": 28}, keep_aspect_ratio=True, ensure_multiple_of=14,
        image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225],
    ).save_pretrained(folder)  # fmt: skip
    return model.eval()


@pytest.fixture(scope="module")
def dpt_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dpt")
    _tiny_dpt(folder)
    return folder


def _box_planar_z(view: View) -> np.ndarray:
    """Planar depth (camera z) of a box room seen by ``view`` and its ray distance."""
    rays = view.pixel_rays()  # [h, w, 3] unit
    lo, hi = np.array([-3.0, -1.6, -4.0]), np.array([2.5, 1.4, 3.0])
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(rays > 0, hi / rays, np.where(rays < 0, lo / rays, np.inf)).min(-1)
    # planar z = the hit point's distance along the viewing axis (independent of the code's
    # planar_to_ray factor, which the conversion uses)
    return t * (rays @ view.forward()), t


def test_conversion_matches_analytic_box_room():
    view = View(30.0, -10.0, 90.0, 48, 64)
    z, ray = _box_planar_z(view)
    fac = torch.from_numpy(view.planar_to_ray())
    cfg = DepthModelConfig(far=1000.0)
    # metric: planar z in metres -> exactly the ray distance
    metric = to_ray_depth(torch.from_numpy(z)[None], "metric", fac, cfg)[0].double()
    np.testing.assert_allclose(metric.numpy(), ray, rtol=1e-5)
    # relative: any positive multiple of 1/z -> the ray distance up to one scale
    rel = to_ray_depth(torch.from_numpy(7.3 / z)[None], "relative", fac, cfg)[0].double().numpy()
    ratio = ray / rel
    assert ratio.std() / ratio.mean() < 1e-5
    # the nearest 2% of the view sit at depth ~1 (normalised disparity)
    assert abs(np.quantile(rel / fac.numpy(), 0.02) - 1.0) < 0.02


def test_conversion_far_shell_for_sky_and_invalid():
    view = View(0.0, 0.0, 90.0, 8, 8)
    fac = torch.from_numpy(view.planar_to_ray())
    cfg = DepthModelConfig(far=50.0)
    disp = torch.full((1, 8, 8), 1.0)
    disp[0, :2] = 0.0  # sky: zero disparity
    disp[0, 2, 0] = float("nan")
    disp[0, 3, 0] = -1.0
    out = to_ray_depth(disp, "relative", fac, cfg)[0]
    assert torch.all(out[:2] == 50.0) and out[2, 0] == 50.0 and out[3, 0] == 50.0
    assert torch.all(torch.isfinite(out)) and torch.all(out[4:] < 50.0)
    z = torch.full((1, 8, 8), 3.0)
    z[0, 0, 0] = 80.0  # beyond the far shell
    met = to_ray_depth(z, "metric", fac, cfg)[0]
    assert met[0, 0] == 50.0
    torch.testing.assert_close(met[4:], 3.0 * fac[4:].float())


def _reference(folder, images: torch.Tensor, post_process: bool = True) -> torch.Tensor:
    """transformers' own pipeline: the saved image processor, the model, and the processor's
    post-processing back to the images' size (ZoeDepth's needs torchvision: a bicubic
    resize instead, ``post_process=False``). [B, h, w]"""
    from transformers.utils import logging

    logging.set_verbosity_error()
    proc = transformers.AutoImageProcessor.from_pretrained(str(folder), local_files_only=True)
    model = transformers.AutoModelForDepthEstimation.from_pretrained(
        str(folder), local_files_only=True
    ).eval()
    inputs = proc(images=list(images.numpy()), do_rescale=False, return_tensors="pt")
    with torch.no_grad():
        out = model(**inputs)
    h, w = images.shape[1:3]
    if not post_process:
        pred = out.predicted_depth[:, None]
        return torch.nn.functional.interpolate(
            pred, size=(h, w), mode="bicubic", align_corners=False
        )[:, 0]
    post = proc.post_process_depth_estimation(out, target_sizes=[(h, w)] * len(images))
    return torch.stack([p["predicted_depth"].reshape(h, w) for p in post])


def test_dpt_loads_offline_and_matches_transformers_own_pipeline(tmp_path):
    _tiny_dpt(tmp_path / "dpt")
    loaded = DepthModel.load(str(tmp_path / "dpt"), DepthModelConfig(batch=2))
    assert loaded.kind == "relative" and loaded.size == 32
    assert "image processor" in loaded.preprocessing
    images = torch.rand(5, 40, 40, 3, generator=torch.Generator().manual_seed(0))
    got = loaded.predict(images)  # 3 batches of <= 2
    torch.testing.assert_close(got, _reference(tmp_path / "dpt", images), rtol=1e-4, atol=1e-5)
    view = View(0.0, 0.0, 90.0, 40, 40)
    ray = loaded.view_depths((images.numpy() * 255).astype(np.uint8), view)
    assert ray.shape == (5, 40, 40) and torch.all(ray > 0) and torch.all(torch.isfinite(ray))


@pytest.mark.parametrize("metric", [False, True])
def test_depth_anything_loads_offline(tmp_path, metric):
    _tiny_depth_anything(tmp_path / "da", metric)
    loaded = DepthModel.load(str(tmp_path / "da"))
    assert loaded.kind == ("metric" if metric else "relative") and loaded.size == 28
    images = torch.rand(3, 30, 30, 3, generator=torch.Generator().manual_seed(2))
    want = _reference(tmp_path / "da", images)
    torch.testing.assert_close(loaded.predict(images), want, rtol=1e-4, atol=1e-5)


def test_probe_reports_where_it_looked(tmp_path, dpt_folder):
    assert probe(str(dpt_folder)).available
    missing = probe(str(tmp_path / "nope"))
    assert not missing.available and "nope" in missing.reason
    cached = probe("someone/no-such-depth-model")
    assert not cached.available and "cache" in cached.reason
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (tmp_path / "other" / "model.safetensors").write_bytes(b"")  # weights of the wrong kind
    other = probe(str(tmp_path / "other"))
    assert not other.available and "not a depth model" in other.reason
    # a DPT of the wrong kind (e.g. Intel/dpt-large-ade, a segmentation head): refused with
    # a reason up front instead of a loading error deep inside transformers
    seg = tmp_path / "seg"
    seg.mkdir()
    config = json.loads((dpt_folder / "config.json").read_text())
    config["architectures"] = ["DPTForSemanticSegmentation"]
    (seg / "config.json").write_text(json.dumps(config))
    (seg / "model.safetensors").write_bytes(b"")
    wrong = probe(str(seg))
    assert not wrong.available and "DPTForSemanticSegmentation" in wrong.reason
    with pytest.raises(InputError, match="not a depth-estimation model"):
        DepthModel.load(str(seg))
    with pytest.raises(InputError, match="layout prior"):
        DepthModel.load(str(tmp_path / "nope"))


def test_model_stage_gives_per_frame_depth(dpt_folder):
    frames = np.stack([textured_equirect(32, 64, seed=s) for s in (0, 0, 1)])
    weight = np.zeros((32, 64), np.float32)
    weight[4:12, 10:40] = 1.0
    cfg = ModelDepthConfig(
        model=str(dpt_folder),
        view_size=24,
        align=AlignConfig(iters=20, iters_next=10, grid_height=16, work_size=16),
    )
    depth = ModelDepthStage(cfg).run(frames, (16, 32), weight)
    assert depth.depth.shape == (3, 16, 32) and depth.depth.dtype == np.float32
    assert np.all(np.isfinite(depth.depth)) and np.all(depth.depth > 0)
    assert "depth model" in depth.source
    static = np.asarray(
        torch.nn.functional.interpolate(torch.from_numpy(weight)[None, None], size=(16, 32))[0, 0]
    )
    np.testing.assert_array_equal(depth.depth[1][static == 0], depth.depth[0][static == 0])


@pytest.fixture(scope="module")
def cli_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli_inputs")
    Image.fromarray(textured_equirect(128, 256, seed=3)).save(d / "pano.png")
    mask = np.zeros((128, 256), np.uint8)
    mask[16:50, 40:220] = 255
    Image.fromarray(mask).save(d / "mask.png")
    return d


def _run(argv, capsys):
    code = cli.main(argv)
    return code, capsys.readouterr().err


def test_generate_with_depth_model_end_to_end(cli_files, dpt_folder, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["generate", str(cli_files / "pano.png"), "--mask", str(cli_files / "mask.png")]
    argv += ["--depth-model", str(dpt_folder), "--preset", "preview", "--frames", "2"]
    code, err = _run([*argv, "--out", str(out)], capsys)
    assert code == 0, err
    manifest = json.loads((out / "scene" / "manifest.json").read_text())
    assert "depth model" in json.dumps(manifest)
    report = json.loads((out / "report.json").read_text())
    assert report["static_max_error"] == 0 and math.isfinite(report["psnr_train"])


def test_generate_with_missing_depth_model_exit_2(cli_files, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["generate", str(cli_files / "pano.png"), "--mask", str(cli_files / "mask.png")]
    code, err = _run([*argv, "--depth-model", str(tmp_path / "nowhere"), "--out", str(out)], capsys)
    assert code == 2
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: no depth model weights")
    assert str(tmp_path / "nowhere") in lines[0] and "layout prior" in lines[0]
    assert not out.exists()


def test_units_calibrated_to_user_depth_or_scaled_to_the_prior():
    """With a user depth panorama: TiP4GEN's median calibration onto it; a relative model
    alone: scaled so the lower hemisphere's median matches the layout prior's."""
    from engine.depth.prior import layout_prior

    stage = ModelDepthStage(ModelDepthConfig(model="unused"))
    lat = (0.5 - (np.arange(16) + 0.5) / 16) * np.pi
    truth = np.repeat((3.0 + np.sin(lat))[:, None], 32, 1).astype(np.float32)
    est = torch.from_numpy(truth * 0.37)[None].repeat(2, 1, 1)
    calibrated, how = stage._units(est, "relative", truth)
    assert "user depth" in how
    torch.testing.assert_close(calibrated, torch.from_numpy(truth)[None].repeat(2, 1, 1))
    scaled, how = stage._units(est, "relative", None)
    prior = layout_prior(16, 32)
    want = torch.median(torch.from_numpy(prior[8:]))  # the stage's (lower) median
    assert abs(float(torch.median(scaled[0, 8:]) / want) - 1) < 1e-5
    same, how = stage._units(est, "metric", None)
    assert how == "metric" and torch.equal(same, est)


def test_zoedepth_metric_loads_offline(tmp_path):
    backbone = transformers.BeitConfig(
        hidden_size=16,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=32,
        image_size=32,
        patch_size=8,
        out_indices=[1, 2, 3, 4],
        reshape_hidden_states=False,
        add_fpn=False,
    )
    cfg = transformers.ZoeDepthConfig(
        backbone_config=backbone,
        neck_hidden_sizes=[8, 8, 16, 16],
        fusion_hidden_size=16,
        bottleneck_features=16,
        num_attractors=[4, 4, 2, 2],
        bin_embedding_dim=8,
        num_relative_features=8,
        patch_size=8,
    )
    torch.manual_seed(2)
    model = transformers.AutoModelForDepthEstimation.from_config(cfg)
    model.save_pretrained(tmp_path / "zoe")
    transformers.ZoeDepthImageProcessor(
        size={"height": 32, "width": 32}, keep_aspect_ratio=False, do_pad=False,
        image_mean=[0.5] * 3, image_std=[0.5] * 3,
    ).save_pretrained(tmp_path / "zoe")  # fmt: skip
    loaded = DepthModel.load(str(tmp_path / "zoe"))
    assert loaded.kind == "metric" and loaded.size == 32
    images = torch.rand(2, 24, 24, 3, generator=torch.Generator().manual_seed(3))
    want = _reference(tmp_path / "zoe", images, post_process=False)
    torch.testing.assert_close(loaded.predict(images), want, rtol=1e-4, atol=1e-5)
    # metric output: planar metres -> ray distance, no renormalisation
    view = View(0.0, 0.0, 90.0, 24, 24)
    ray = loaded.view_depths(images, view)
    fac = torch.from_numpy(view.planar_to_ray()).float()
    ok = (want > 0) & (want < loaded.cfg.far)
    torch.testing.assert_close(ray[ok], (want * fac)[ok], rtol=1e-4, atol=1e-5)


def test_per_frame_model_depth_checkpoint_resumes(cli_files, dpt_folder, tmp_path):
    """The depth checkpoint keeps every frame's model depth [T, h, w]; a run cancelled in
    lifting resumes from it (the model is not run again) with the same depth source."""
    from engine import config, pipeline
    from engine.errors import Cancelled
    from engine.progress import CancelToken

    inputs = config.Inputs(cli_files / "pano.png", mask=cli_files / "mask.png")
    cfg = config.build_config("preview", frames=2, depth_model=str(dpt_folder))
    out = tmp_path / "run"
    token = CancelToken()

    def cancel_in_lift(stage, fraction, message):
        if stage == "lift":
            token.cancel()

    with pytest.raises(Cancelled):
        pipeline.run(inputs, cfg, out, callback=cancel_in_lift, cancel=token)
    depth = np.load(out / ".pano4d" / "depth.npy")
    pano_h, pano_w = 128, 256  # the depth is at the panorama's own size
    assert depth.shape[0] == 2 and depth.shape[1:] == (pano_h, pano_w) and np.all(depth > 0)
    messages = []
    pipeline.run(inputs, cfg, out, callback=lambda s, f, m: messages.append((s, m)), resume=True)
    assert ("depth", "resumed from checkpoint") in messages
    assert not any(s == "depth" and "frame" in m for s, m in messages)
    manifest = json.loads((out / "scene" / "manifest.json").read_text())
    assert "depth model" in manifest["provenance"]["depth"]


def test_stage_aligns_a_relative_models_views_in_disparity(dpt_folder, monkeypatch):
    """The stage with a relative model whose views carry disparity-affine errors (an oracle
    in place of the network's forward pass: each view's true disparity, rescaled and
    shifted): its panorama is the scene's geometry up to one scale, where converting each
    view on its own (scale only) is far off."""
    from engine.depth import models as models_mod
    from tests.engine.test_align import SCENES, absrel
    from tests.engine.test_disparity import disparity_affine

    truth = SCENES["box room"](64, 128)
    corrupted, _, _ = disparity_affine(truth)
    monkeypatch.setattr(models_mod.DepthModel, "predict", lambda self, images, cb=None: corrupted)
    frames = np.stack([textured_equirect(64, 128, seed=0)] * 2)
    cfg = ModelDepthConfig(
        model=str(dpt_folder),
        view_size=48,
        align=AlignConfig(iters=150, iters_next=20, grid_height=48, work_size=None),
    )
    depth = ModelDepthStage(cfg).run(frames, (64, 128), np.zeros((64, 128), np.float32))
    assert "affine-aligned in disparity" in depth.source
    assert absrel(depth.depth[0], truth) < 0.012  # scale-only views, then eq. 4: 0.025
