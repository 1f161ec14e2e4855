"""Camera tours: look-around, orbit, keyframed path files and their validation."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

from engine.errors import InputError
from engine.tour import look_around, make_tour, orbit


def test_look_around_turns_once():
    views = look_around(8, (32, 48))
    yaws = [v.yaw_deg for v in views]
    assert yaws[0] == -180 and np.allclose(np.diff(yaws), 45)
    assert all(v.position == (0.0, 0.0, 0.0) and (v.height, v.width) == (32, 48) for v in views)


def test_orbit_circles_the_centre_looking_along_the_circle():
    views = orbit(12, (16, 16), radius=0.3)
    pos = np.array([v.position for v in views])
    assert np.allclose(np.linalg.norm(pos, axis=1), 0.3)
    for a, b in zip(views, views[1:]):
        step = np.array(b.position) - np.array(a.position)
        step /= np.linalg.norm(step)
        assert float(step @ a.forward()) > 0.95  # moving (almost) where it looks


def _write(tmp_path, keyframes, **top):
    doc = {"format": "pano4d-camera-path", "version": 1, "keyframes": keyframes, **top}
    p = tmp_path / "path.json"
    p.write_text(json.dumps(doc))
    return p


def test_path_file_interpolates_the_short_way(tmp_path):
    p = _write(
        tmp_path,
        [
            {"t": 0, "yaw": 170, "pitch": 0, "fov": 90},
            {"t": 1, "yaw": -170, "pitch": 20, "fov": 60, "position": [0.2, 0, 0]},
        ],
    )
    views = make_tour(str(p), 3, (16, 16))
    assert views[1].yaw_deg == pytest.approx(-180, abs=1e-9) or views[1].yaw_deg == pytest.approx(
        180
    )
    assert views[1].pitch_deg == pytest.approx(10) and views[1].fov_deg == pytest.approx(75)
    assert views[2].position == pytest.approx((0.2, 0, 0))
    assert math.isclose(views[0].yaw_deg, 170)


def test_an_unknown_tour_names_the_tours_there_are():
    with pytest.raises(InputError, match="not a tour \\(look-around, orbit\\)"):
        make_tour("spiral", 3, (16, 16))
    with pytest.raises(InputError, match="camera path file not found"):
        make_tour("mine.json", 3, (16, 16))


def test_render_fov_is_the_path_files_default_field_of_view(tmp_path):
    p = _write(
        tmp_path, [{"t": 0, "yaw": 0, "pitch": 0}, {"t": 1, "yaw": 90, "pitch": 0, "fov": 100}]
    )
    assert [v.fov_deg for v in make_tour(str(p), 3, (16, 16))] == pytest.approx([90, 95, 100])
    assert [v.fov_deg for v in make_tour(str(p), 3, (16, 16), 60)] == pytest.approx([60, 80, 100])


@pytest.mark.parametrize(
    "keyframes,top,match",
    [
        ([{"t": 0, "yaw": 0, "pitch": 0}], {}, "at least two"),
        ([{"t": 0, "yaw": 0, "pitch": 0}, {"t": 0.5, "yaw": 0, "pitch": 0}], {}, "from 0 to 1"),
        ([{"t": 0, "yaw": 0, "pitch": 95}, {"t": 1, "yaw": 0, "pitch": 0}], {}, "pitch"),
        (
            [{"t": 0, "yaw": 0, "pitch": 0, "zoom": 2}, {"t": 1, "yaw": 0, "pitch": 0}],
            {},
            "unknown",
        ),
        (
            [{"t": 0, "yaw": 0, "pitch": 0, "position": [5, 0, 0]}, {"t": 1, "yaw": 0, "pitch": 0}],
            {},
            "position",
        ),
        ([{"t": 0, "yaw": "a", "pitch": 0}, {"t": 1, "yaw": 0, "pitch": 0}], {}, "yaw"),
        (
            [{"t": 0, "yaw": 0, "pitch": 0}, {"t": 1, "yaw": 0, "pitch": 0}],
            {"version": 9},
            "version",
        ),
    ],
)
def test_bad_path_files(tmp_path, keyframes, top, match):
    p = _write(tmp_path, keyframes, **top)
    with pytest.raises(InputError, match=match):
        make_tour(str(p), 4, (8, 8))


def test_missing_or_garbage_path_file(tmp_path):
    with pytest.raises(InputError, match="not found"):
        make_tour(str(tmp_path / "nope.json"), 4, (8, 8))
    (tmp_path / "g.json").write_bytes(b"\xff\x00garbage")
    with pytest.raises(InputError, match="JSON"):
        make_tour(str(tmp_path / "g.json"), 4, (8, 8))
    os.mkfifo(tmp_path / "pipe.json")  # a pipe is refused, never read (it would block)
    with pytest.raises(InputError, match="not a regular file"):
        make_tour(str(tmp_path / "pipe.json"), 4, (8, 8))
