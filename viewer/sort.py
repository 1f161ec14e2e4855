"""Depth sorting of Gaussian splats for alpha blending (back to front), off the render thread.

Keys
    :func:`depth_keys`  camera-space depth ``-z_cam`` for a world->GL-camera matrix (screen).
    :func:`radial_keys` distance from an eye point (VR: one order shared by both eyes).

Sort
    :func:`sort_back_to_front` quantises the keys to ``bits``-bit integers over [min, max]
    (far -> 0) and runs a stable integer sort, returning uint32 indices far -> near (the
    renderer's index buffer). Within one quantisation bucket ``(max - min) / (2**bits - 1)``
    the order is by index (stable), so the result is deterministic and equals
    ``np.argsort(q, kind="stable")`` of the quantised keys exactly, whichever backend runs.

    Backends (all give identical output):
      ``"torch"``  ``torch.sort(stable=True)`` on int16/int32 — on CPU with OpenMP this is
                   fbgemm's parallel LSD radix sort (all cores). Fastest here.
      ``"numpy"``  numpy's radix argsort (``kind="stable"`` on uint16 *is* an LSD radix sort),
                   on chunks sorted in a small thread pool (numpy releases the GIL) and merged
                   with per-chunk histograms — a counting-sort merge, no comparisons.
      ``"auto"``   torch if it imports (and ``threads != 1``), else numpy.

Culling
    :func:`frustum_cull` keeps the splats whose bounding sphere (centre, 3-sigma radius)
    meets a view frustum widened by a margin; a request with a :class:`Frustum` sorts only
    those (a 90-degree view of a panorama scene sees about a fifth of it).

Background
    :class:`BackgroundSorter` sorts on a worker thread; ``request`` never blocks and coalesces
    (only the newest pending request is sorted), ``latest`` returns the newest finished order
    without blocking. Drawing never waits on it. :func:`needs_resort` decides when to ask.
"""

from __future__ import annotations

import math
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "BackgroundSorter",
    "Frustum",
    "frustum_cull",
    "SortToken",
    "depth_keys",
    "needs_resort",
    "radial_keys",
    "sort_back_to_front",
]

# Below this many keys a single numpy argsort beats any chunking / thread hand-off.
_SMALL = 1 << 18
# Target chunk length for the numpy backend (numpy's radix argsort slows down per element
# once its int64 index buffers leave the cache: ~7.5 ns/key at <=1M vs ~16 ns at 2M here).
_CHUNK = 1 << 19


# --------------------------------------------------------------------------- keys


def depth_keys(means: np.ndarray, view_gl: np.ndarray) -> np.ndarray:
    """[N] float32 camera-space depth ``-z_cam`` (positive in front of the camera).

    means: [N, 3] world positions; view_gl: [4, 4] world->GL-camera matrix
    (``engine.camera.View.world_to_camera_gl()``; the GL camera looks along -z).
    """
    m = np.asarray(view_gl, dtype=np.float64)
    if m.shape != (4, 4):
        raise ValueError(f"view_gl must be [4, 4], got {m.shape}")
    row = (-m[2, :3]).astype(np.float32)
    pts = np.asarray(means, dtype=np.float32)
    d = pts @ row  # BLAS gemv, releases the GIL
    d += np.float32(-m[2, 3])
    return d


def radial_keys(means: np.ndarray, eye: np.ndarray | tuple[float, float, float]) -> np.ndarray:
    """[N] float32 distance from ``eye`` (world point) — orientation-free, so one order
    serves both eyes of a headset and survives head rotation."""
    pts = np.asarray(means, dtype=np.float32)
    e = np.asarray(eye, dtype=np.float32).reshape(3)
    d = pts - e
    r2 = np.einsum("ij,ij->i", d, d)
    return np.sqrt(r2, out=r2)


# --------------------------------------------------------------------------- culling


@dataclass(frozen=True)
class Frustum:
    """A symmetric view frustum for culling: half-angle tangents, near plane, splat radii.

    ``margin`` widens the half-angles (1.2: 20 % more) so an order sorted a moment ago still
    covers the view while the camera turns.
    """

    tan_x: float
    tan_y: float
    near: float
    radii: np.ndarray  # [N] world radius of each splat
    margin: float = 1.2


def frustum_cull(means: np.ndarray, view_gl: np.ndarray, f: Frustum) -> np.ndarray:
    """int64 indices of the splats whose bounding sphere meets the (widened) frustum.

    means: [N, 3] world positions; view_gl: [4, 4] world->GL camera (looking along -z).
    """
    m = np.asarray(view_gl, dtype=np.float32)
    pts = np.asarray(means, dtype=np.float32)
    cam = pts @ m[:3, :3].T + m[:3, 3]
    z = -cam[:, 2]
    r = np.asarray(f.radii, dtype=np.float32)
    tx, ty = f.tan_x * f.margin, f.tan_y * f.margin
    keep = z + r > f.near
    # distance of the centre outside each side plane, with the plane's normal length
    keep &= np.abs(cam[:, 0]) - z * tx <= r * np.float32(math.sqrt(1 + tx * tx))
    keep &= np.abs(cam[:, 1]) - z * ty <= r * np.float32(math.sqrt(1 + ty * ty))
    return np.flatnonzero(keep)


# --------------------------------------------------------------------------- sort

_torch: Any = None
_torch_checked = False
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _get_torch() -> Any:
    global _torch, _torch_checked
    if not _torch_checked:
        try:
            import torch

            _torch = torch
        except Exception:  # pragma: no cover - torch is a project dependency
            _torch = None
        _torch_checked = True
    return _torch


def _get_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            workers = max(1, min(4, os.cpu_count() or 1))
            _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pano4d-sort")
        return _pool


def quantize_far_to_near(keys: np.ndarray, bits: int = 16) -> np.ndarray:
    """Integer keys, 0 for the largest (farthest) key up to ``2**bits - 1`` for the smallest.

    uint16 for ``bits <= 16``, else uint32. Non-finite keys give unspecified buckets.
    """
    if not 1 <= bits <= 32:
        raise ValueError(f"bits must be in 1..32, got {bits}")
    k = np.asarray(keys, dtype=np.float32).reshape(-1)
    dtype = np.uint16 if bits <= 16 else np.uint32
    if k.size == 0:
        return np.zeros(0, dtype)
    lo, hi = float(k.min()), float(k.max())
    maxq = float((1 << bits) - 1)
    if not hi > lo:  # all equal (or NaN): one bucket
        return np.zeros(k.size, dtype)
    if bits <= 16:
        t = np.subtract(np.float32(hi), k, dtype=np.float32)
        t *= np.float32(maxq / (hi - lo))
        np.minimum(t, np.float32(maxq), out=t)  # guard float rounding at the top
    else:  # float32 cannot hold 2**32 levels
        t = np.subtract(hi, k, dtype=np.float64)
        t *= maxq / (hi - lo)
        np.minimum(t, maxq, out=t)
    return t.astype(dtype)


def _sort_torch(q: np.ndarray) -> np.ndarray:
    torch = _get_torch()
    # Order-preserving map to the signed type of the same width (flip the top bit).
    if q.dtype == np.uint16:
        s = (q ^ np.uint16(0x8000)).view(np.int16)
    else:
        s = (q ^ np.uint32(0x80000000)).view(np.int32)
    idx = torch.sort(torch.from_numpy(s), stable=True).indices
    return idx.to(torch.int32).numpy().view(np.uint32)


def _sort_numpy(q: np.ndarray, threads: int | None) -> np.ndarray:
    n = q.size
    workers = threads if threads is not None else max(1, min(4, os.cpu_count() or 1))
    if n < _SMALL or q.dtype != np.uint16 or workers <= 1:
        return np.argsort(q, kind="stable").astype(np.uint32)
    k = max(workers, -(-n // _CHUNK))
    bounds = np.linspace(0, n, k + 1).astype(np.int64)
    m = 1 << 16
    cat = np.empty(n, np.uint32)  # chunk-local stable orders, made global, concatenated
    hist = np.empty((k, m), np.int64)

    def phase1(c: int) -> None:
        a, e = bounds[c], bounds[c + 1]
        qc = q[a:e]
        np.add(np.argsort(qc, kind="stable"), a, out=cat[a:e], casting="unsafe")
        hist[c] = np.bincount(qc, minlength=m)

    pool = _get_pool()
    list(pool.map(phase1, range(k)))
    # Counting-sort merge: the block of key v from chunk c goes after every key < v and
    # after key v's blocks of the chunks before c.
    total = hist.sum(0)
    shift = np.cumsum(total) - total
    shift = shift[None, :] + (np.cumsum(hist, 0) - hist) - (np.cumsum(hist, 1) - hist)
    out = np.empty(n, np.uint32)

    def phase2(c: int) -> None:
        a, e = bounds[c], bounds[c + 1]
        pos = np.repeat(shift[c], hist[c])
        pos += np.arange(e - a)
        out[pos] = cat[a:e]

    list(pool.map(phase2, range(k)))
    return out


def sort_back_to_front(
    keys: np.ndarray, bits: int = 16, backend: str = "auto", threads: int | None = None
) -> np.ndarray:
    """uint32 indices ordering ``keys`` from the largest (far) to the smallest (near).

    Keys are quantised to ``bits``-bit integers over [min, max] and sorted stably, so
    ``keys[order]`` is non-increasing up to one bucket ``(max - min) / (2**bits - 1)`` and
    equal buckets keep index order. ``backend``: "auto" | "torch" | "numpy" (identical
    results). ``threads``: None uses every core (torch's OpenMP pool, or up to 4 numpy pool
    threads); 1 runs one single-threaded numpy radix argsort — slower on an idle machine
    (~25 vs ~12 ms for 2M keys on 2 cores) but it degrades gracefully when the other cores
    are busy (e.g. llvmpipe rendering), where a 2-thread OpenMP sort can take 80 ms.
    """
    if backend not in ("auto", "torch", "numpy"):
        raise ValueError(f"unknown backend {backend!r} (auto, torch, numpy)")
    q = quantize_far_to_near(keys, bits)
    if q.size <= 1:
        return np.arange(q.size, dtype=np.uint32)
    use_torch = backend == "torch" or (
        backend == "auto" and threads != 1 and _get_torch() is not None
    )
    if use_torch:
        if _get_torch() is None:
            raise RuntimeError("backend='torch' requested but torch is not installed")
        return _sort_torch(q)
    return _sort_numpy(q, threads)


# --------------------------------------------------------------------------- re-sort policy


def needs_resort(
    prev_state: Any,
    new_state: Any,
    angle_deg: float = 1.0,
    distance: float = 0.01,
    frame_changed: bool = False,
) -> bool:
    """Whether a new sort is worth requesting.

    True when there is no previous state, when the animation frame changed (new means), or
    when the camera turned its viewing direction by more than ``angle_deg`` or moved by more
    than ``distance`` since ``prev_state`` (``viewer.camera.CameraState``; anything with a
    compatible ``moved_since`` works). For radial (VR) keys pass ``angle_deg=math.inf``.
    """
    if frame_changed or prev_state is None:
        return True
    return bool(new_state.moved_since(prev_state, angle_deg, distance))


# --------------------------------------------------------------------------- background


@dataclass(frozen=True)
class SortToken:
    """Identifies a finished sort: what it was computed for.

    seq: the request number (``request`` returns it); frame_id: as passed to ``request``;
    count: number of splats sorted (an order is only valid for means of that count — the
    renderer should use it only while the bound frame matches); kind: "depth" | "radial";
    sort_ms: time the worker spent on keys + sort.
    """

    seq: int
    frame_id: Any
    count: int
    kind: str
    sort_ms: float
    drawn: int = -1  # splats in the order (fewer than count when culled)


@dataclass
class _Request:
    seq: int
    means: np.ndarray
    view_gl: np.ndarray | None
    eye: np.ndarray | None
    frame_id: Any
    frustum: Frustum | None = None


class BackgroundSorter:
    """Sorts splats on a worker thread; the render thread never waits on it.

    ``request(means, view_gl, frame_id)`` (or ``eye=...`` for radial keys) hands over the
    newest job and returns at once; a request still pending when a newer one arrives is
    dropped (coalescing), so at most one sort runs and at most one waits. ``latest()``
    returns ``(order, token)`` of the newest finished sort or None, without locking against
    the worker: results are published by a single reference swap and the arrays are
    read-only and never reused (double buffering by allocation: the order you hold stays
    valid while the worker writes the next one).

    The caller must not modify ``means`` in place after requesting (pass a new array per
    frame); the sorter does not copy it (24 MB for 2M splats).

    ``threads``: see :func:`sort_back_to_front`. The default None is *adaptive*: the sorter
    times the all-cores and the single-thread sort (per million keys), uses the faster and
    re-probes the other every ``probe_every`` sorts — all cores win on an idle machine, one
    thread wins by far when other work (software GL, the generate job) holds a core.
    """

    probe_every = 16
    _ADAPT_MIN = 1 << 18  # smaller sorts are not timed (noise) and use all cores

    def __init__(self, bits: int = 16, backend: str = "auto", threads: int | None = None):
        self.bits = bits
        self.backend = backend
        self.threads = threads
        self._cond = threading.Condition()
        self._pending: _Request | None = None
        self._busy = False
        self._closed = False
        self._seq = 0
        self._result: tuple[np.ndarray, SortToken] | None = None
        self.requests = 0  # number of request() calls
        self.sorts = 0  # number of sorts actually run
        self.dropped = 0  # requests superseded before they started (coalesced)
        self.last_error: BaseException | None = None
        self.ms_per_million: dict[str, float | None] = {"all": None, "single": None}
        self._timed = 0
        self._thread = threading.Thread(target=self._run, name="pano4d-sorter", daemon=True)
        self._thread.start()

    # ---- render-thread side (non-blocking)

    def request(
        self,
        means: np.ndarray,
        view_gl: np.ndarray | None = None,
        frame_id: Any = None,
        *,
        eye: np.ndarray | tuple[float, float, float] | None = None,
        frustum: Frustum | None = None,
    ) -> int:
        """Queue a sort of ``means`` [N, 3] by depth for ``view_gl`` (or by distance from
        ``eye``); with a ``frustum`` (depth keys only) the splats outside it are left out.
        Returns the request's sequence number. Never waits for a running sort."""
        if (view_gl is None) == (eye is None):
            raise ValueError("pass exactly one of view_gl (depth keys) or eye (radial keys)")
        v = None if view_gl is None else np.array(view_gl, dtype=np.float64).reshape(4, 4)
        e = None if eye is None else np.array(eye, dtype=np.float32).reshape(3)
        with self._cond:  # held only for a few attribute writes, never during a sort
            if self._closed:
                raise RuntimeError("BackgroundSorter is closed")
            self._seq += 1
            self.requests += 1
            if self._pending is not None:
                self.dropped += 1
            self._pending = _Request(self._seq, means, v, e, frame_id, frustum)
            self._cond.notify()
            return self._seq

    def latest(self) -> tuple[np.ndarray, SortToken] | None:
        """The newest finished ``(order, token)``, or None before the first. Never blocks."""
        return self._result

    @property
    def busy(self) -> bool:
        """True while a sort is running or waiting."""
        return self._busy or self._pending is not None

    # ---- helpers for callers that may wait (offscreen rendering, tests)

    def wait(self, seq: int | None = None, timeout: float | None = None) -> bool:
        """Block until a result with ``token.seq >= seq`` (default: the last request) exists,
        or nothing is left to do. Returns whether such a result is available. Never call this
        from a render loop."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            target = self._seq if seq is None else seq
            while True:
                r = self._result
                if r is not None and r[1].seq >= target:
                    return True
                if self._closed or (not self._busy and self._pending is None):
                    return False  # the target was dropped for a newer one, or failed
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)

    def close(self, timeout: float | None = 5.0) -> None:
        """Stop the worker (a running sort finishes first; pending requests are dropped)."""
        with self._cond:
            self._closed = True
            self._pending = None
            self._cond.notify_all()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    @property
    def closed(self) -> bool:
        return self._closed and not self._thread.is_alive()

    def __enter__(self) -> BackgroundSorter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- worker

    def _pick_threads(self, n: int) -> int | None:
        if self.threads is not None or n < self._ADAPT_MIN:
            return self.threads
        a, b = self.ms_per_million["all"], self.ms_per_million["single"]
        if a is None:
            return None
        if b is None:
            return 1
        best, other = (None, 1) if a <= b else (1, None)
        return other if self._timed % self.probe_every == self.probe_every - 1 else best

    def _record(self, threads: int | None, n: int, seconds: float) -> None:
        if self.threads is not None or n < self._ADAPT_MIN:
            return
        key = "single" if threads == 1 else "all"
        ms = seconds * 1e3 * 1e6 / n
        old = self.ms_per_million[key]
        self.ms_per_million[key] = ms if old is None else 0.7 * old + 0.3 * ms
        self._timed += 1

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                job, self._pending = self._pending, None
                self._busy = True
            try:
                t0 = time.perf_counter()
                keep = None
                if job.eye is not None:
                    keys, kind = radial_keys(job.means, job.eye), "radial"
                elif job.frustum is not None:
                    keep = frustum_cull(job.means, job.view_gl, job.frustum)
                    keys, kind = depth_keys(job.means[keep], job.view_gl), "depth"
                else:
                    keys, kind = depth_keys(job.means, job.view_gl), "depth"
                threads = self._pick_threads(keys.size)
                t1 = time.perf_counter()
                order = sort_back_to_front(keys, self.bits, self.backend, threads)
                self._record(threads, keys.size, time.perf_counter() - t1)
                if keep is not None:
                    order = keep[order].astype(np.uint32)
                order.flags.writeable = False
                ms = (time.perf_counter() - t0) * 1e3
                n = len(job.means)
                token = SortToken(job.seq, job.frame_id, n, kind, ms, int(order.size))
                result: tuple[np.ndarray, SortToken] | None = (order, token)
            except Exception as exc:  # keep serving; the previous result stays current
                self.last_error = exc
                result = None
            with self._cond:
                if result is not None:
                    self._result = result  # single reference swap: the publish
                    self.sorts += 1
                self._busy = False
                self._cond.notify_all()
