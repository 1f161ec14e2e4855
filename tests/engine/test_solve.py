"""The linear colour solve: weights, sparse algebra, CG, and the training views."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from engine.camera import View
from engine.lift.cells import CellConfig, build_cells
from engine.lift.init import cell_values, init_gaussians
from engine.lift.optimize import colours_of, with_colours
from engine.lift.raster import pixel_weights, render_view, view_camera
from engine.lift.solve import (
    Csr,
    SolveConfig,
    build_weights,
    frame_training_views,
    solve_colours,
    training_views,
)
from engine.sphere import equirect_dirs, project_to_view
from tests.conftest import textured_equirect


def _scene(h=32, density=1.0, seed=0, depth=4.0):
    pano = textured_equirect(h, 2 * h, seed=seed)
    cells = build_cells(
        pano, np.full((h, 2 * h), depth), np.zeros((h, 2 * h), bool), CellConfig(density=density)
    )
    colours = cell_values(pano.astype(np.float32) / 255, cells)
    return (
        pano,
        cells,
        init_gaussians(cells, colours, torch.full((len(cells),), depth, dtype=torch.float64)),
    )


def test_pixel_weights_reproduce_the_rasteriser():
    _, _, g = _scene()
    rng = torch.Generator().manual_seed(1)
    g = with_colours(g, torch.rand(len(g), 3, generator=rng))
    for view in (View(10, 5, 90, 40, 48), View(-120, 70, 75, 36, 36)):
        vm, k, w, h = view_camera(view)
        pw = pixel_weights(g, vm, k, w, h, min_weight=0.0)
        lin = torch.zeros(h * w, 3).index_add_(0, pw.pix, pw.w[:, None] * colours_of(g)[pw.gauss])
        ref = render_view(g, view, background=torch.zeros(3))
        assert torch.allclose(lin.reshape(h, w, 3), ref.rgb, atol=2e-5)
        assert torch.allclose(pw.alpha, ref.alpha, atol=2e-5)
        # dropping small weights loses little of each pixel's mass
        kept = pixel_weights(g, vm, k, w, h, min_weight=1e-3)
        mass = torch.zeros(h * w).index_add_(0, kept.pix, kept.w)
        assert float((ref.alpha.reshape(-1) - mass).max()) < 0.02


def test_a_rectangle_of_a_view_renders_those_pixels():
    """Exact while the rectangle's Jacobian clamp margin (15 % of its size) exceeds the
    footprints of the Gaussians just outside it (gsplat clamps to the image it renders)."""
    _, _, g = _scene()
    view = View(30, -10, 80, 80, 100)
    full = render_view(g, view, background=torch.zeros(3)).rgb
    part = render_view(g, view, (10, 12, 70, 60), background=torch.zeros(3)).rgb
    assert torch.allclose(part, full[12:60, 10:70], atol=1e-5)


def test_csr_blocks_and_transpose_match_a_dense_matrix():
    rng = torch.Generator().manual_seed(2)
    blocks, dense = [], []
    for rows in (5, 9, 3):
        r = torch.sort(torch.randint(0, rows, (40,), generator=rng)).values.int()
        c = torch.randint(0, 11, (40,), generator=rng).int()
        v = torch.rand(40, generator=rng)
        d = torch.zeros(rows, 11).index_put_((r.long(), c.long()), v, accumulate=True)
        blocks.append((r, c, v, rows))
        dense.append(d)
    a = Csr.from_blocks(blocks, 11)
    d = torch.cat(dense)
    old = Csr.CHUNK
    Csr.CHUNK = 7  # transpose in many chunks
    try:
        at = a.transpose()
    finally:
        Csr.CHUNK = old
    x, y = torch.rand(11, 3, generator=rng), torch.rand(17, 3, generator=rng)
    assert torch.allclose(a @ x, d @ x, atol=1e-6)
    assert torch.allclose(at @ y, d.T @ y, atol=1e-6)


def test_conjugate_gradients_match_a_dense_least_squares_solve():
    rng = torch.Generator().manual_seed(3)
    a = torch.rand(60, 20, generator=rng) * (torch.rand(60, 20, generator=rng) < 0.3)
    omega = torch.rand(60, generator=rng) + 0.5
    y, c0 = torch.rand(60, 3, generator=rng), torch.rand(20, 3, generator=rng)
    cfg = SolveConfig(iters=200, tol=1e-10, damping=1e-2)
    m = a.T @ (omega[:, None] * a)
    diag = torch.diagonal(m)
    mu = cfg.damping * float(diag.mean())
    want = torch.linalg.solve(m + mu * torch.eye(20), a.T @ (omega[:, None] * y) + mu * c0)
    got = solve_colours(lambda c: m @ c, a.T @ (omega[:, None] * y), c0, diag, cfg)
    assert torch.allclose(got, want.clamp(0, 1), atol=1e-4)


def test_held_colours_stay_and_the_rest_solve_the_reduced_system():
    """Reference: the dense solve of the free entries' equations with the held colours
    moved to the right-hand side, (M_ff + mu I) c_f = b_f + mu c0_f - M_fh c0_h."""
    rng = torch.Generator().manual_seed(7)
    a = torch.rand(60, 20, generator=rng) * (torch.rand(60, 20, generator=rng) < 0.4)
    omega = torch.rand(60, generator=rng) + 0.5
    y, c0 = torch.rand(60, 3, generator=rng), torch.rand(20, 3, generator=rng)
    held = torch.zeros(20, dtype=torch.bool)
    held[[1, 4, 5, 11, 19]] = True
    cfg = SolveConfig(iters=200, tol=1e-10, damping=1e-2)
    m = a.T @ (omega[:, None] * a)
    diag = torch.diagonal(m)
    mu = cfg.damping * float(diag.mean())
    b = a.T @ (omega[:, None] * y)
    f = ~held
    want = torch.linalg.solve(
        m[f][:, f] + mu * torch.eye(int(f.sum())), b[f] + mu * c0[f] - m[f][:, held] @ c0[held]
    )
    got = solve_colours(lambda c: m @ c, b, c0, diag, cfg, held=held)
    assert torch.equal(got[held], c0[held])
    assert torch.allclose(got[f], want.clamp(0, 1), atol=1e-4)
    # and holding changes the others' solution (the held colours are not the free optimum)
    free_all = solve_colours(lambda c: m @ c, b, c0, diag, cfg)
    assert float((free_all[f] - got[f]).abs().max()) > 1e-2


def test_the_solve_recovers_colours_a_render_was_made_with():
    _, _, g = _scene(h=24, density=1.0, seed=4)
    truth = torch.rand(len(g), 3, generator=torch.Generator().manual_seed(5))
    cfg = SolveConfig(view_sets=2, iters=200, tol=1e-8, damping=1e-6, min_weight=0.0)
    views = training_views(48, cfg)
    w = build_weights(g, views, cfg)
    target = torch.cat(
        [
            render_view(with_colours(g, truth), v, background=torch.zeros(3)).rgb.reshape(-1, 3)
            for v in views
        ]
    )
    got = w.solve(target, torch.full_like(truth, 0.5), cfg)
    seen = w.diag() > 0.05 * float(w.diag().mean())
    # the order pattern puts about half of the Gaussians partly behind their neighbours
    assert float(seen.float().mean()) > 0.4
    assert float((got[seen] - truth[seen]).abs().mean()) < 0.01
    assert float(((w.render(got) - target) ** 2).mean()) < 1e-6


def test_training_views_cover_the_sphere_once_per_set():
    for sets in (1, 2, 3):
        views = training_views(256, SolveConfig(view_sets=sets))
        assert len(views) == 6 * sets and views[0].width == round(2 * 256 / (2 * math.pi))
        dirs = equirect_dirs(48, 96)
        seen = torch.zeros(48, 96, dtype=torch.long)
        for v in views:
            x, y, front = project_to_view(dirs, v)
            seen += (front & (x >= 0) & (x < v.width) & (y >= 0) & (y < v.height)).long()
        # each cube map covers every direction exactly once (ties on face edges aside)
        assert int(seen.min()) >= sets and float((seen == sets).float().mean()) > 0.97
    # the extra sets are turned: no face of set 1 looks where a face of set 0 does
    v = training_views(256, SolveConfig(view_sets=2))
    fwd0 = np.stack([x.forward() for x in v[:6]])
    fwd1 = np.stack([x.forward() for x in v[6:]])
    assert float((fwd0 @ fwd1.T).max()) < 0.95


def test_training_view_resolution_and_the_later_frames_own():
    """``resolution`` scales the cube faces (90 degrees at the input's angular resolution at
    their centre: W / (2 pi) px per unit focal); later frames use ``frame_resolution``."""
    base = round(2 * 4096 / (2 * math.pi))
    fine = SolveConfig(view_sets=1, resolution=1.25, frame_resolution=1.0)
    assert {v.width for v in training_views(4096, fine)} == {round(base * 1.25)}
    assert {v.width for v in frame_training_views(4096, fine)} == {base}
    same = SolveConfig(view_sets=1, resolution=1.25)
    assert frame_training_views(4096, same) == training_views(4096, same)


def test_damping_keeps_unseen_gaussians_at_their_initial_colour():
    _, _, g = _scene(h=32)
    cfg = SolveConfig(view_sets=1, damping=1e-3, iters=100, tol=1e-6)
    views = training_views(64, cfg)[:1]  # one face: the far side of the sphere is unseen
    w = build_weights(g, views, cfg)
    init = torch.full((len(g), 3), 0.25)
    got = w.solve(torch.full((w.a.shape[0], 3), 0.7), init, cfg)
    unseen = w.diag() == 0
    assert float(unseen.float().mean()) > 0.5
    assert torch.equal(got[unseen], init[unseen])
    assert float(((w.render(got) - 0.7) ** 2).mean()) < 1e-4


def test_pixel_weights_are_each_pixels_exact_solid_angle():
    """Reference: the exact solid angle of the rectangle [x0, x1] x [y0, y1] on the image
    plane at distance 1, F(x1, y1) - F(x0, y1) - F(x1, y0) + F(x0, y0) with
    F(x, y) = atan(x y / sqrt(1 + x^2 + y^2)); the whole view is 4 asin(sin a sin b)."""
    from engine.lift.solve import _pixel_weights

    view = View(10.0, 20.0, 90.0, 24, 32)
    f = view.focal
    xe = (np.arange(view.width + 1) - view.width / 2) / f
    ye = (np.arange(view.height + 1) - view.height / 2) / f
    big_f = lambda x, y: np.arctan(x * y / np.sqrt(1 + x * x + y * y))  # noqa: E731
    X, Y = np.meshgrid(xe, ye)
    c = big_f(X, Y)
    exact = c[1:, 1:] - c[1:, :-1] - c[:-1, 1:] + c[:-1, :-1]
    got = _pixel_weights(view).reshape(view.height, view.width).double().numpy()
    np.testing.assert_allclose(got, exact, rtol=2e-3)
    a, b = math.atan(xe[-1]), math.atan(ye[-1])
    assert got.sum() == pytest.approx(4 * math.asin(math.sin(a) * math.sin(b)), rel=1e-3)
