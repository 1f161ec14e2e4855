"""Splat depth sorting: keys, quantised back-to-front sort, background sorter."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from engine.camera import View
from viewer.camera import CameraState
from viewer.sort import (
    BackgroundSorter,
    depth_keys,
    needs_resort,
    quantize_far_to_near,
    radial_keys,
    sort_back_to_front,
)

BACKENDS = ["torch", "numpy"]


def cloud(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    d = rng.normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    return (d * rng.uniform(1, 20, size=(n, 1))).astype(np.float32)


def test_depth_keys_match_camera_transform():
    means = cloud(1000)
    view = View(yaw_deg=37, pitch_deg=-12, position=(0.1, -0.2, 0.3))
    r = view.rotation()
    cam = (means.astype(np.float64) - np.asarray(view.position)) @ r  # world -> camera (GL)
    np.testing.assert_allclose(depth_keys(means, view.world_to_camera_gl()), -cam[:, 2], atol=1e-4)
    # a point straight ahead is at positive depth equal to its distance
    ahead = np.asarray(view.position) + 7 * view.forward()
    assert depth_keys(ahead[None].astype(np.float32), view.world_to_camera_gl())[
        0
    ] == pytest.approx(7, abs=1e-4)
    assert depth_keys(means, view.world_to_camera_gl()).dtype == np.float32


def test_radial_keys():
    means = cloud(500)
    eye = (0.2, 0.0, -0.1)
    np.testing.assert_allclose(
        radial_keys(means, eye), np.linalg.norm(means - np.array(eye), axis=1), rtol=1e-5
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_far_to_near_direction(backend):
    keys = np.array([1.0, 5.0, 3.0, 4.0, 0.5], np.float32)
    np.testing.assert_array_equal(sort_back_to_front(keys, backend=backend), [1, 3, 2, 0, 4])
    assert sort_back_to_front(keys, backend=backend).dtype == np.uint32


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("n", [7, 5000, 300_001, 1_100_000])
def test_quantised_sort_against_brute_force(backend, n):
    rng = np.random.default_rng(n)
    keys = np.concatenate(
        [
            rng.normal(10, 3, n - n // 4),
            rng.choice([2.0, 7.5, 7.5000001], n // 4),  # exact and near duplicates
        ]
    ).astype(np.float32)
    rng.shuffle(keys)
    order = sort_back_to_front(keys, bits=16, backend=backend)
    # a permutation
    assert order.shape == (n,)
    assert np.array_equal(np.sort(order), np.arange(n, dtype=np.uint32))
    # monotone (far -> near) in the true keys up to one quantisation bucket
    bucket = float(keys.max() - keys.min()) / 65535
    s = keys[order].astype(np.float64)
    assert np.all(np.diff(s) <= bucket * 1.001 + 1e-12)
    # equals the brute-force stable sort of the quantised keys exactly
    q = ((keys.max().astype(np.float64) - keys) * 65535 / (keys.max() - keys.min())).astype(
        np.int64
    )
    q_ours = quantize_far_to_near(keys, 16).astype(np.int64)
    assert np.abs(q_ours - q).max() <= 1
    np.testing.assert_array_equal(order, np.argsort(q_ours, kind="stable"))
    # and agrees with a float argsort wherever keys are more than a bucket apart
    ref = np.argsort(-keys.astype(np.float64), kind="stable")
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n)
    a, b = ref[:-1], ref[1:]
    separated = keys[a].astype(np.float64) - keys[b] > bucket
    assert np.all(rank[a][separated] < rank[b][separated])


def test_well_separated_keys_equal_float_argsort():
    rng = np.random.default_rng(3)
    keys = rng.permutation(5000).astype(np.float32) * 10  # gaps >> bucket
    for backend in BACKENDS:
        np.testing.assert_array_equal(sort_back_to_front(keys, backend=backend), np.argsort(-keys))


@pytest.mark.parametrize("bits", [8, 12, 16, 20, 32])
def test_bits_and_backends_agree(bits):
    keys = np.random.default_rng(bits).exponential(5, 400_000).astype(np.float32)
    a = sort_back_to_front(keys, bits=bits, backend="torch")
    b = sort_back_to_front(keys, bits=bits, backend="numpy")
    c = sort_back_to_front(keys, bits=bits, backend="numpy", threads=1)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    np.testing.assert_array_equal(a, sort_back_to_front(keys, bits=bits, threads=1))
    bucket = float(keys.max() - keys.min()) / (2**bits - 1)
    assert np.all(np.diff(keys[a].astype(np.float64)) <= bucket * 1.001 + 1e-6)


def test_degenerate_inputs():
    assert sort_back_to_front(np.zeros(0, np.float32)).size == 0
    np.testing.assert_array_equal(sort_back_to_front(np.array([3.0])), [0])
    np.testing.assert_array_equal(sort_back_to_front(np.full(10, 2.5)), np.arange(10))
    with pytest.raises(ValueError):
        sort_back_to_front(np.ones(3), bits=0)
    with pytest.raises(ValueError):
        sort_back_to_front(np.ones(3), backend="cuda")


def test_needs_resort():
    s = CameraState()
    assert needs_resort(None, s)
    assert not needs_resort(s, s)
    assert needs_resort(s, s, frame_changed=True)
    assert not needs_resort(s, CameraState(yaw_deg=0.5))
    assert needs_resort(s, CameraState(yaw_deg=1.5))
    assert needs_resort(s, CameraState(position=(0, 0, -0.02)))
    assert not needs_resort(s, CameraState(position=(0, 0, -0.02)), distance=0.05)
    assert not needs_resort(s, CameraState(fov_deg=30))


def test_background_sorter_results_arrive():
    means = cloud(20_000)
    view = View(yaw_deg=30, pitch_deg=5).world_to_camera_gl()
    with BackgroundSorter() as bs:
        assert bs.latest() is None
        seq = bs.request(means, view, frame_id=3)
        assert bs.wait(seq, timeout=30)
        order, token = bs.latest()
        assert (token.seq, token.frame_id, token.count, token.kind) == (seq, 3, 20_000, "depth")
        np.testing.assert_array_equal(order, sort_back_to_front(depth_keys(means, view)))
        assert not order.flags.writeable
        eye = (0.1, 0.0, 0.2)
        seq = bs.request(means, frame_id=4, eye=eye)
        assert bs.wait(seq, timeout=30)
        order, token = bs.latest()
        assert token.kind == "radial" and token.frame_id == 4
        np.testing.assert_array_equal(order, sort_back_to_front(radial_keys(means, eye)))
        with pytest.raises(ValueError):
            bs.request(means)


def test_background_sorter_coalesces():
    means = cloud(400_000)
    views = [View(yaw_deg=float(i)).world_to_camera_gl() for i in range(40)]
    with BackgroundSorter() as bs:
        for i, v in enumerate(views):
            last = bs.request(means, v, frame_id=i)
        assert bs.wait(last, timeout=60)
        order, token = bs.latest()
        assert token.seq == last and token.frame_id == 39
        assert bs.requests == 40
        assert bs.sorts < 40 and bs.dropped > 0
        assert bs.sorts + bs.dropped == 40
        np.testing.assert_array_equal(order, sort_back_to_front(depth_keys(means, views[-1])))


def test_latest_never_blocks_while_sorting():
    small = cloud(1000)
    huge = cloud(4_000_000, seed=1)
    view = np.eye(4)
    with BackgroundSorter() as bs:
        assert bs.wait(bs.request(small, view, frame_id="small"), timeout=30)
        sorts_before = bs.sorts
        bs.request(huge, view, frame_id="huge")
        deadline = time.monotonic() + 5
        while not bs._busy and time.monotonic() < deadline:  # wait until the worker took it
            time.sleep(0.0005)
        times, tokens = [], []
        for _ in range(20):
            t0 = time.perf_counter()
            r = bs.latest()
            times.append(time.perf_counter() - t0)
            tokens.append(r[1].frame_id)
            # request() must not block either
            t0 = time.perf_counter()
            bs.request(huge, view, frame_id="huge2")
            times.append(time.perf_counter() - t0)
        in_flight = bs.sorts == sorts_before
        assert in_flight, "the 4M sort finished too quickly to test non-blocking"
        assert set(tokens) == {"small"}  # the old result is served while the new one runs
        assert sorted(times)[len(times) // 2] < 0.005
        assert max(times) < 0.05  # generous: a loaded 2-core machine may deschedule us
        assert bs.wait(timeout=120)
        assert bs.latest()[1].frame_id == "huge2"


def test_close_stops_thread():
    bs = BackgroundSorter()
    bs.request(cloud(1000), np.eye(4))
    bs.close()
    assert bs.closed
    assert not any(t.name == "pano4d-sorter" and t is bs._thread for t in threading.enumerate())
    with pytest.raises(RuntimeError):
        bs.request(cloud(10), np.eye(4))
    bs.close()  # idempotent


def test_background_sorter_adapts_thread_count():
    means = cloud(300_000)
    view = View(yaw_deg=10).world_to_camera_gl()
    with BackgroundSorter() as bs:
        for _ in range(bs.probe_every + 2):
            assert bs.wait(bs.request(means, view), timeout=30)
        assert all(v is not None and v > 0 for v in bs.ms_per_million.values())
        np.testing.assert_array_equal(bs.latest()[0], sort_back_to_front(depth_keys(means, view)))
    with BackgroundSorter(threads=1) as fixed:
        assert fixed.wait(fixed.request(means, view), timeout=30)
        assert fixed.ms_per_million == {"all": None, "single": None}
