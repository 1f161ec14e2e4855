"""Spatial-temporal depth alignment (4K4DGen eq. 4) and TiP4GEN's median calibration.

A monocular depth model sees each perspective view on its own, so the n view depths of a
frame disagree in scale and offset, and the same view drifts from frame to frame. Eq. 4
fuses them into one panoramic depth S^k per frame:

    S^k = argmin_S  E_i [ l_depth L_depth + l_scale L_scale + l_shift L_shift ]
    L_depth = || softplus(a_i^k) D_i^k - gamma_i(S) + b_i^k ||
    L_scale = || a_i^k - a_i^(k-1) || + || softplus(a_i^k) - 1 ||
    L_shift = TV(b_i^k) + || b_i^k - b_i^(k-1) ||

with a scale a_i^k per view and frame, a per-pixel shift b_i^k per view and frame, and
gamma_i(S) the panoramic field seen through view i. Defaults are the paper's: l_depth = 1,
l_scale = 0.1, l_shift = 0.01, 3000 iterations with l_scale = l_shift = 0 for the first
1500 (``AlignConfig``; the pipeline's CPU presets use fewer).

Choices made here, where the paper is silent:

- S is an equirect grid of log-depth (``grid_height`` rows, positive by construction) with
  a small total-variation smoothness term (seam-wrapped): a smooth spherical field.
  gamma_i samples it bilinearly with seam wrap and pole continuation (engine.sphere).
- The norm is a Charbonnier (smooth L1) of the residual relative to the current S, so near
  walls and the far shell weigh alike; each view pixel is weighted by the view's feather
  weight (falls to 0 at the view border, as in the fusion of eq. 3).
- The objective is unchanged by S -> S + c, b_i -> b_i + c for all views: a common offset is
  unobservable from overlaps. We fix this gauge with a penalty on the mean shift over all
  views (``lambda_gauge``), i.e. the views' offsets average to zero.
- Warm-up (the first ``warmup_fraction`` of the iterations, l_scale = l_shift = 0): with no
  TV a free per-pixel b_i can cancel any residual, so eq. 4 would leave S undetermined
  (measured: 3-5 % AbsRel on a box room). During the warm-up each b_i therefore moves as a
  per-view constant only; then the fitted scales are folded into the data (a_i reset to
  softplus(a_i) = 1), so ||softplus(a_i) - 1|| keeps each view near its fitted scale rather
  than pulling arbitrary model units towards 1, and b_i becomes per-pixel with its TV.
- Frame 0 starts from ``init_rounds`` alternating closed-form fits (S = weighted average of
  the scaled views; each scale = least squares against S; the mean log-scale fixed at 0):
  well posed even for views that see only the far shell, where an affine fit is not.
- The optimisation runs on views area-reduced to ``work_size`` pixels; the output is the
  closed-form fusion (eq. 3) of the aligned full-resolution views
  ``scale_i D_i + upsampled(b_i)`` at the requested panorama size, so detail finer
  than the grid survives.
- Frame k starts from frame k-1's a, b and S (warm start). Static pixels
  (``motion_weight == 0``) take frame 0's depth in every frame, blended by the feathered
  motion weight, and the field S^k is tied to S^0 there during the optimisation
  (``lambda_static``), so the animated regions meet their static surroundings.
- TiP4GEN eqs. 9-11 (``calibrate=True`` and a ``reference`` depth per frame):
  D_aligned^t = alpha^t D^t + beta^t, alpha^t = median(d_ref^t / d^t),
  beta^t = median(d_ref^t - alpha^t d^t), with d^t the panoramic depth seen from the
  reference view (or the whole panorama when no view is given). Medians are torch's (the
  lower middle value). Note that with alpha^t the median ratio, the signs of
  d_ref - alpha d split evenly, so beta^t is close to 0 by construction: the calibration is
  essentially a per-frame median scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..camera import View
from ..errors import InputError
from ..progress import Progress
from ..sphere import (
    EquirectSampler,
    feather_weight,
    fuse_views,
    perspective_view,
    view_sample_coords,
)

SOFTPLUS_ONE = math.log(math.e - 1.0)  # softplus(SOFTPLUS_ONE) == 1


@dataclass(frozen=True)
class AlignConfig:
    """Settings of :func:`align_depths` (defaults: 4K4DGen's)."""

    iters: int = 3000  # iterations for the first frame
    iters_next: int = 3000  # iterations for each later (warm-started) frame
    warmup_fraction: float = 0.5  # share of iterations with l_scale = l_shift = 0
    lambda_depth: float = 1.0
    lambda_scale: float = 0.1
    lambda_shift: float = 0.01
    lambda_smooth: float = 0.01  # TV smoothness of the spherical field S
    lambda_static: float = 1.0  # frames k > 0: S^k = S^0 on static pixels
    lambda_gauge: float = 1.0  # the views' mean shift is 0 (the unobservable common offset)
    grid_height: int = 128  # rows of the field S (2x as many columns)
    work_size: int | None = 128  # views are area-reduced to this size while optimising
    lr_field: float = 0.03  # Adam learning rates (log-depth, scale logits, shifts)
    lr_scale: float = 0.03
    lr_shift: float = 0.01
    feather: float = 0.15  # view border ramp (fraction of the view size)
    charbonnier_eps: float = 1e-3
    init_rounds: int = 20  # closed-form alternations that initialise frame 0
    constant_shift_in_warmup: bool = True  # b_i moves as a constant while l_shift = 0
    calibrate: bool = False  # TiP4GEN eqs. 9-11 against ``reference`` (when given)
    device: str = "cpu"

    def check(self) -> None:
        if self.iters < 1 or self.iters_next < 1:
            raise InputError("depth alignment needs at least one iteration per frame")
        if not 0.0 <= self.warmup_fraction <= 1.0:
            raise InputError("depth alignment warmup_fraction must be within 0..1")
        if self.grid_height < 4 or (self.work_size is not None and self.work_size < 4):
            raise InputError("depth alignment grid_height and work_size must be >= 4")


@dataclass
class _State:
    """Parameters of one frame: a_i, b_i, log S, and the scales folded into the data.

    The effective scale of view i is ``fold_i * softplus(a_i)`` (see ``_Aligner.optimise``);
    the temporal scale term compares effective scales of consecutive frames.
    """

    alpha: Tensor  # [V]
    beta: Tensor  # [V, h, w]
    log_s: Tensor  # [gh, gw]
    fold: Tensor  # [V]

    def scale(self) -> Tensor:
        return self.fold * F.softplus(self.alpha)


@dataclass
class _Frame:
    """The data of the frame being aligned and the states it is tied to."""

    d: Tensor  # [V, h, w] view depths (work size, global unit)
    wgt: Tensor  # [V, h, w] pixel weights
    wsum: Tensor  # scalar, wgt.sum()
    prev: _State | None  # frame k-1
    first: _State | None  # frame 0


# ----------------------------------------------------------------------------------------
# public entry points


def align_depths(
    view_depths: Tensor | np.ndarray,
    views: list[View],
    size: tuple[int, int],
    *,
    motion_weight: Tensor | np.ndarray | None = None,
    reference: Tensor | np.ndarray | None = None,
    reference_view: View | None = None,
    cfg: AlignConfig = AlignConfig(),
    progress: Progress | None = None,
) -> Tensor:
    """Fuse per-view depths into one panoramic depth per frame (4K4DGen eq. 4).

    view_depths: [T, V, h, w] (or [V, h, w] for one frame) positive distances along each
        pixel's ray (not planar z) from a depth model, in any units and with any per-view
        scale and offset; non-finite or <= 0 pixels are ignored.
    views: the V views (engine.camera.View) the depths were estimated in; their height and
        width must be h and w.
    size: (H, W) of the output panorama.
    motion_weight: [H', W'] in [0, 1], 0 where the scene is static (e.g. PanoVideo.weight,
        any size): those pixels keep frame 0's depth in every frame. None: all may change.
    reference: [T, H_r, W_r] metric depth per frame for TiP4GEN's median calibration
        (used when ``cfg.calibrate``); a panorama, or the image of ``reference_view``.
    reference_view: the perspective view the reference depth was taken in (None: the
        reference is a panorama).
    returns: Tensor  # [T, H, W] float32 distance along the ray (CPU).
    """
    cfg.check()
    progress = progress or Progress("depth")
    d = torch.as_tensor(
        np.asarray(view_depths) if isinstance(view_depths, np.ndarray) else view_depths
    ).to(torch.float32)
    if d.ndim == 3:
        d = d[None]
    if d.ndim != 4 or d.shape[1] != len(views):
        raise InputError(f"view depths of shape {tuple(d.shape)} do not match {len(views)} views")
    if any((v.height, v.width) != tuple(d.shape[-2:]) for v in views):
        raise InputError("every view must have the size of its depth map")
    aligner = _Aligner(d, views, size, cfg, motion_weight)
    out = aligner.run(progress)
    if cfg.calibrate and reference is not None:
        out = median_calibrate(out, reference, reference_view)
    return out


def median_calibrate(
    depth: Tensor, reference: Tensor | np.ndarray, view: View | None = None
) -> Tensor:
    """TiP4GEN eqs. 9-11: per frame, D_aligned = alpha D + beta with alpha = median(ref / d)
    and beta = median(ref - alpha d), d the depth seen where the reference was taken.

    depth: Tensor  # [T, H, W] panoramic depth
    reference: [T, h, w] reference (metric) depth; non-finite / <= 0 pixels are ignored
    view: the perspective view of the reference (None: ``reference`` is a panorama)
    returns: Tensor  # [T, H, W]
    """
    ref = torch.as_tensor(np.asarray(reference, dtype=np.float32))
    if ref.ndim == 2:
        ref = ref[None].expand(depth.shape[0], -1, -1)
    if ref.shape[0] != depth.shape[0]:
        raise InputError(f"{ref.shape[0]} reference depth frames for {depth.shape[0]} frames")
    out = torch.empty_like(depth)
    for t in range(depth.shape[0]):
        seen = _seen_from(depth[t], view, tuple(ref.shape[-2:]))
        ok = torch.isfinite(ref[t]) & (ref[t] > 0) & torch.isfinite(seen) & (seen > 0)
        if not bool(ok.any()):
            raise InputError(f"reference depth of frame {t} has no valid pixel")
        r, s = ref[t][ok].double(), seen[ok].double()
        a = torch.median(r / s)
        b = torch.median(r - a * s)
        out[t] = (a * depth[t].double() + b).to(depth.dtype)
    return out


def _seen_from(depth: Tensor, view: View | None, hw: tuple[int, int]) -> Tensor:
    """[H, W] panorama -> the depth where the reference pixels are: [h, w]."""
    img = depth[None, None].float()
    if view is None:
        if tuple(depth.shape) == hw:
            return depth
        return F.interpolate(img, size=hw, mode="bilinear", align_corners=False)[0, 0]
    if (view.height, view.width) != hw:
        raise InputError("the reference view's size differs from the reference depth's")
    return perspective_view(img, view)[0, 0]


# ----------------------------------------------------------------------------------------
# the optimisation


def _charbonnier(x: Tensor, eps: float) -> Tensor:
    return torch.sqrt(x * x + eps * eps) - eps


def _tv(x: Tensor) -> Tensor:
    """Mean anisotropic total variation over the last two axes."""
    return (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (
        x[..., :, 1:] - x[..., :, :-1]
    ).abs().mean()


def _tv_equirect(x: Tensor) -> Tensor:
    """TV of an equirect grid [H, W]: columns wrap across the seam."""
    return (x[1:] - x[:-1]).abs().mean() + (torch.roll(x, -1, dims=1) - x).abs().mean()


def _scale_fit(x: Tensor, y: Tensor, w: Tensor) -> Tensor:
    """Per view, the weighted least-squares scale a of y ~ a x (well posed even for a view
    that sees a constant depth, e.g. only the far shell, where an affine fit is not).

    x, y, w: Tensor  # [V, h, w];  returns: Tensor  # [V], positive
    """
    num = (w * x * y).sum((1, 2))
    return (num / (w * x * x).sum((1, 2)).clamp_min(1e-12)).clamp_min(1e-6)


def _area_reduce(x: Tensor, size: int) -> Tensor:
    """[N, h, w] -> [N, size, size] (area average; unchanged when already that size)."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    return F.interpolate(x[:, None], size=(size, size), mode="area")[:, 0]


class _Aligner:
    """Holds the per-view geometry once and aligns the frames one after another."""

    def __init__(
        self,
        depths: Tensor,
        views: list[View],
        size: tuple[int, int],
        cfg: AlignConfig,
        motion_weight: Tensor | np.ndarray | None,
    ) -> None:
        self.cfg, self.views, self.size = cfg, views, size
        self.dev = torch.device(cfg.device)
        self.depths = depths  # [T, V, h, w], stays on the CPU at full resolution
        t, v, h, w = depths.shape
        self.work = min(cfg.work_size or h, h, w) if h == w else None
        ws = self.work
        self.work_views = [
            View(x.yaw_deg, x.pitch_deg, x.fov_deg, ws or h, ws or w, x.roll_deg) for x in views
        ]
        valid = torch.isfinite(depths) & (depths > 0)
        # one global unit for the whole sequence (keeps frames comparable, scales ~ 1)
        self.unit = float(depths[0][valid[0]].median()) if bool(valid[0].any()) else 1.0
        if not bool(valid[0].any()):
            raise InputError("the depth model produced no valid depth for the first frame")
        self.gh = cfg.grid_height
        self.gw = 2 * cfg.grid_height
        self.grid = self._sample_grid().to(self.dev)  # [1, V*h*w, 1, 2] (precomputed)
        self.feather = self._feather().to(self.dev)  # [V, h, w]
        self.motion = self._motion(motion_weight)

    # -- geometry ------------------------------------------------------------------------

    def _sample_grid(self) -> Tensor:
        """grid_sample coordinates of every work-view pixel in the padded field."""
        k = EquirectSampler.PAD
        cols, rows = [], []
        for view in self.work_views:
            row, col = view_sample_coords(view, self.gh, self.gw)
            rows.append(row)
            cols.append(col)
        row = torch.stack(rows).reshape(-1).clamp(-1.0, self.gh)
        col = torch.remainder(torch.stack(cols).reshape(-1) + 0.5, self.gw) - 0.5
        gx = (col + k) * (2.0 / (self.gw + 2 * k - 1)) - 1
        gy = (row + k) * (2.0 / (self.gh + 2 * k - 1)) - 1
        return torch.stack([gx, gy], dim=-1).float()[None, :, None, :]

    def _feather(self) -> Tensor:
        v0 = self.work_views[0]
        y, x = torch.meshgrid(
            torch.arange(v0.height, dtype=torch.float64) + 0.5,
            torch.arange(v0.width, dtype=torch.float64) + 0.5,
            indexing="ij",
        )
        f = feather_weight(x, y, v0.width, v0.height, self.cfg.feather).float()
        return f[None].expand(len(self.views), -1, -1)

    def _motion(self, weight: Tensor | np.ndarray | None) -> tuple[Tensor, Tensor] | None:
        """(motion at the output size [H, W], static mask of the field [gh, gw]) or None."""
        if weight is None:
            return None
        w = torch.as_tensor(np.asarray(weight, dtype=np.float32)).clamp(0, 1)[None, None]
        out = F.interpolate(w, size=self.size, mode="bilinear", align_corners=False)[0, 0]
        on_grid = F.interpolate(w, size=(self.gh, self.gw), mode="area")[0, 0]
        return out, (on_grid == 0).to(self.dev)

    def gamma(self, log_s: Tensor) -> Tensor:
        """The field seen by every work view: [V, h, w]."""
        padded = EquirectSampler(torch.exp(log_s)[None, None]).padded
        out = F.grid_sample(padded, self.grid, mode="bilinear", align_corners=True)
        v, h, w = self.feather.shape
        return out.reshape(v, h, w)

    # -- frames --------------------------------------------------------------------------

    def frame_inputs(self, t: int) -> tuple[Tensor, Tensor]:
        """Work-size depths of frame t in the global unit, and their weights: [V, h, w]."""
        d = self.depths[t] / self.unit
        valid = torch.isfinite(d) & (d > 0)
        d = torch.where(valid, d, torch.zeros_like(d))
        if self.work is not None:
            d_sum = _area_reduce(d, self.work)
            cnt = _area_reduce(valid.float(), self.work)
            d = d_sum / cnt.clamp_min(1e-6)
            valid = cnt > 0.5
        wgt = self.feather * valid.to(self.dev)
        return d.to(self.dev), wgt

    def initial_state(self, d: Tensor, wgt: Tensor) -> _State:
        """Frame 0's starting point: ``init_rounds`` of alternating closed-form fits — the
        field as the weighted average of the scaled views, then each view's scale by
        weighted least squares against the field — so the optimisation starts near a
        consistent solution (zero shifts; their constant part is fitted in the warm-up)."""
        v = len(self.views)
        a = torch.ones(v, device=self.dev)
        fill = float(d[wgt > 0].median())
        for _ in range(max(1, self.cfg.init_rounds)):
            img = (a[:, None, None] * d)[:, None, None]
            fused, cover = fuse_views(
                img, self.work_views, self.gh, self.gw, feather=self.cfg.feather
            )
            s = torch.where(cover > 0, fused[0, 0], torch.full_like(cover, fill)).clamp_min(1e-3)
            a = _scale_fit(d, self.gamma(torch.log(s)), wgt)
            a = a / torch.exp(torch.log(a).mean())  # anchors the overall scale
        return _State(
            torch.full((v,), SOFTPLUS_ONE, device=self.dev),
            torch.zeros_like(d),
            torch.log(s),
            a,
        )

    def run(self, progress: Progress) -> Tensor:
        n = self.depths.shape[0]
        out = torch.empty(n, *self.size, dtype=torch.float32)
        state: _State | None = None
        first: _State | None = None
        for t in range(n):
            d, wgt = self.frame_inputs(t)
            prev = state
            if state is None:
                state = self.initial_state(d, wgt)
            iters = self.cfg.iters if t == 0 else self.cfg.iters_next
            sub = progress.sub(t / n, (t + 1) / n)
            state = self.optimise(d, wgt, state, prev, first, iters, t, sub)
            if first is None:
                first = state
            out[t] = self.fuse(t, state)
            if self.motion is not None and t > 0:
                m = self.motion[0]
                out[t] = out[0] * (1 - m) + out[t] * m
        progress.update(1.0, f"aligned {n} frame(s)")
        return out

    def optimise(
        self,
        d: Tensor,
        wgt: Tensor,
        init: _State,
        prev: _State | None,
        first: _State | None,
        iters: int,
        t: int,
        progress: Progress,
    ) -> _State:
        """Warm-up (regularisers off, shifts held), fold the scales, then the full eq. 4."""
        cfg = self.cfg
        warm = int(round(cfg.warmup_fraction * iters))
        state = _State(init.alpha.clone(), init.beta.clone(), init.log_s.clone(), init.fold)
        ctx = _Frame(d, wgt, wgt.sum().clamp_min(1e-6), prev, first)
        msg = f"align frame {t}"
        state = self._phase(ctx, state, warm, False, progress.sub(0, warm / iters), msg)
        # fold the fitted scales into the data: ||softplus(a) - 1|| then keeps the views near
        # their common scale instead of pulling arbitrary model units towards 1
        state = _State(
            torch.full_like(state.alpha, SOFTPLUS_ONE), state.beta, state.log_s, state.scale()
        )
        return self._phase(ctx, state, iters - warm, True, progress.sub(warm / iters, 1), msg)

    def _phase(
        self, ctx: _Frame, state: _State, iters: int, regs: bool, progress: Progress, msg: str
    ) -> _State:
        if iters <= 0:
            return state
        cfg = self.cfg
        alpha = state.alpha.clone().requires_grad_(True)
        log_s = state.log_s.clone().requires_grad_(True)
        per_pixel = regs or not cfg.constant_shift_in_warmup
        beta0 = state.beta.clone().requires_grad_(per_pixel)
        offset = torch.zeros(len(alpha), 1, 1, device=alpha.device, requires_grad=not per_pixel)
        groups = [
            {"params": [log_s], "lr": cfg.lr_field},
            {"params": [alpha], "lr": cfg.lr_scale},
            {"params": [beta0 if per_pixel else offset], "lr": cfg.lr_shift},
        ]
        opt = torch.optim.Adam(groups)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda i: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * i / iters))
        )
        report = max(1, min(iters // 25, 10))  # progress and cancel checks, well under 1 s
        for it in range(iters):
            beta = beta0 + offset
            cur = _State(alpha, beta, log_s, state.fold)
            loss = self.loss(ctx, cur, regs)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if it % report == 0 or it == iters - 1:
                progress.update((it + 1) / iters, f"{msg}: {it + 1}/{iters}")
        beta = (beta0 + offset).detach()
        return _State(alpha.detach(), beta, log_s.detach(), state.fold)

    def loss(self, ctx: _Frame, st: _State, regs: bool) -> Tensor:
        """Eq. 4 for one frame (plus the field's smoothness, the gauge and the static tie)."""
        cfg = self.cfg
        g = self.gamma(st.log_s)
        scale = st.scale()
        resid = (scale[:, None, None] * ctx.d + st.beta - g) / g.detach().clamp_min(1e-6)
        loss = cfg.lambda_depth * (ctx.wgt * _charbonnier(resid, cfg.charbonnier_eps)).sum()
        loss = loss / ctx.wsum + cfg.lambda_smooth * _tv_equirect(st.log_s)
        loss = loss + cfg.lambda_gauge * ((ctx.wgt * st.beta).sum() / ctx.wsum).abs()
        if self.motion is not None and ctx.first is not None:
            static = self.motion[1]
            loss = loss + cfg.lambda_static * (st.log_s - ctx.first.log_s)[static].abs().mean()
        if not regs:
            return loss
        l_scale = (F.softplus(st.alpha) - 1).abs().mean()
        l_shift = _tv(st.beta)
        if ctx.prev is not None:  # temporal terms, on the effective scale (see _State)
            l_scale = l_scale + (scale - ctx.prev.scale()).abs().mean()
            l_shift = l_shift + (st.beta - ctx.prev.beta).abs().mean()
        return loss + cfg.lambda_scale * l_scale + cfg.lambda_shift * l_shift

    def fuse(self, t: int, state: _State) -> Tensor:
        """Closed-form fusion (eq. 3) of the aligned full-resolution views: [H, W]."""
        d = self.depths[t] / self.unit
        valid = torch.isfinite(d) & (d > 0)
        v, h, w = d.shape
        beta = state.beta.cpu()
        if beta.shape[-2:] != (h, w):
            beta = F.interpolate(beta[:, None], size=(h, w), mode="bilinear", align_corners=False)[
                :, 0
            ]
        aligned = state.scale().cpu()[:, None, None] * d + beta
        field = torch.exp(state.log_s.cpu())[None, None]
        # invalid view pixels take the field's value (they carry no information)
        for i in torch.nonzero(~valid.reshape(v, -1).all(1)).flatten().tolist():
            seen = perspective_view(field, self.views[i])[0, 0]
            aligned[i] = torch.where(valid[i], aligned[i], seen)
        fill = F.interpolate(field, size=self.size, mode="bilinear", align_corners=False)
        fused, _ = fuse_views(
            aligned[:, None, None], self.views, *self.size, feather=self.cfg.feather, fill=fill
        )
        return (fused[0, 0] * self.unit).clamp_min(1e-6)
