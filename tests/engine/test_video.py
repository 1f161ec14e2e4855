"""MP4 writing, reading and 360° metadata (engine.video)."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest

from engine import video
from engine.errors import Cancelled, FormatError
from engine.progress import CancelToken, Progress
from engine.video import has_spherical_metadata, read_mp4, write_mp4

V1_UUID = bytes.fromhex("ffcc8263f8554a938814587a02521fdd")
CONTAINERS = {
    b"moov",
    b"trak",
    b"mdia",
    b"minf",
    b"stbl",
    b"dinf",
    b"edts",
    b"udta",
    b"sv3d",
    b"proj",
}


def gradient(h: int, w: int, shift: int = 0) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 128 + 100 * np.sin(2 * np.pi * (x + shift) / w)
    g = 40 + 170 * y / h
    b = 128 + 90 * np.cos(2 * np.pi * (x / w + y / h))
    return np.stack([r, g, b], -1).round().astype(np.uint8)


def walk(data: bytes, start: int, end: int, path: tuple = ()) -> list[tuple[tuple, int, int]]:
    """Independent ISO-BMFF walker: (path of types, body start, end); checks children tile parents."""
    out, pos = [], start
    while pos < end:
        assert pos + 8 <= end, f"dangling bytes in {path}"
        size, typ = struct.unpack(">I4s", data[pos : pos + 8])
        head = 8
        if size == 1:
            size, head = struct.unpack(">Q", data[pos + 8 : pos + 16])[0], 16
        elif size == 0:
            size = end - pos
        assert size >= head and pos + size <= end, f"bad size for {typ} in {path}"
        here = (*path, typ)
        out.append((here, pos + head, pos + size))
        if typ in CONTAINERS:
            out += walk(data, pos + head, pos + size, here)
        elif typ == b"stsd":  # full box + entry count, then sample entries
            for entry in walk(data, pos + head + 8, pos + size, here):
                out.append(entry)
                if len(entry[0]) == len(here) + 1:  # visual sample entry: 78 bytes of fields
                    out += walk(data, entry[1] + 78, entry[2], entry[0])
        pos += size
    assert pos == end, f"children overrun {path}"
    return out


def boxes(path: Path) -> list[tuple[tuple, int, int]]:
    data = path.read_bytes()
    return walk(data, 0, len(data))


def ffmpeg_probe(path: Path) -> str:
    r = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)],
        capture_output=True,
        text=True,
    )
    return r.stderr


def test_round_trip_smooth_content(tmp_path):
    frames = [gradient(128, 256, shift=6 * t) for t in range(8)]
    out = write_mp4(tmp_path / "g.mp4", frames, 24.0)
    assert out == tmp_path / "g.mp4"
    v = read_mp4(out)
    assert v.shape == (8, 128, 256, 3) and v.dtype == np.uint8
    err = np.abs(v.astype(np.int16) - np.stack(frames).astype(np.int16))
    assert err.mean() < 3.0
    assert "bt709" in ffmpeg_probe(out) and "24 fps" in ffmpeg_probe(out)


def test_distinct_solid_colours(tmp_path):
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255), (0, 0, 0), (200, 120, 40)]
    frames = [np.full((64, 96, 3), c, np.uint8) for c in colours]
    v = read_mp4(write_mp4(tmp_path / "c.mp4", iter(frames), 10.0))  # a plain iterator works
    assert v.shape == (6, 64, 96, 3)
    for got, want in zip(v, colours):
        assert np.abs(got.reshape(-1, 3).mean(0) - want).max() < 3.0


@pytest.mark.parametrize("faststart", [False, True])
def test_spherical_metadata(tmp_path, faststart):
    frames = [gradient(64, 128, shift=t) for t in range(5)]
    plain = write_mp4(tmp_path / "plain.mp4", frames, 30.0, faststart=faststart)
    sph = write_mp4(tmp_path / "sph.mp4", frames, 30.0, spherical=True, faststart=faststart)
    assert not has_spherical_metadata(plain)
    assert has_spherical_metadata(sph)
    assert has_spherical_metadata(sph, 1) and has_spherical_metadata(sph, 2)

    tree = boxes(sph)  # also checks every size is consistent
    tops = [p[0] for p, _, _ in tree if len(p) == 1]
    assert (tops.index(b"moov") < tops.index(b"mdat")) == faststart
    data = sph.read_bytes()
    uuids = [(s, e) for p, s, e in tree if p == (b"moov", b"trak", b"uuid")]
    assert len(uuids) == 1
    s, e = uuids[0]
    assert data[s : s + 16] == V1_UUID
    xml = data[s + 16 : e].decode()
    for tag in [
        "<GSpherical:Spherical>true</GSpherical:Spherical>",
        "<GSpherical:Stitched>true</GSpherical:Stitched>",
        "<GSpherical:ProjectionType>equirectangular</GSpherical:ProjectionType>",
        "<GSpherical:StitchingSoftware>Pano4D</GSpherical:StitchingSoftware>",
    ]:
        assert tag in xml
    v2 = {p[-1] for p, _, _ in tree if len(p) > 7 and p[7] in (b"sv3d", b"st3d")}
    assert v2 == {b"st3d", b"sv3d", b"svhd", b"proj", b"prhd", b"equi"}

    probe = ffmpeg_probe(sph).lower()  # ffmpeg's own parser sees the V2 boxes
    assert "spherical mapping: equirectangular" in probe
    assert "spherical mapping" not in ffmpeg_probe(plain).lower()

    # the tagged file decodes to exactly what the untagged one does
    a, b = read_mp4(plain), read_mp4(sph)
    assert a.shape == b.shape == (5, 64, 128, 3)
    assert np.array_equal(a, b)
    r = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(sph), "-f", "null", "-"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0 and r.stderr.strip() == ""


def test_equirect_4096x2048(tmp_path):
    frames = [gradient(2048, 4096), gradient(2048, 4096, shift=64)]
    out = write_mp4(tmp_path / "big.mp4", frames, 30.0, spherical=True)
    v = read_mp4(out)
    assert v.shape == (2, 2048, 4096, 3)
    assert np.abs(v.astype(np.int16) - np.stack(frames)).mean() < 3.0
    assert has_spherical_metadata(out)


def test_odd_size_is_padded_to_even(tmp_path):
    frames = [gradient(61, 121, shift=t) for t in range(3)]
    v = read_mp4(write_mp4(tmp_path / "odd.mp4", frames, 24.0))
    assert v.shape == (3, 62, 122, 3)
    assert np.abs(v[:, :61, :121].astype(np.int16) - np.stack(frames)).mean() < 3.0
    # the extra column / row repeat the last ones
    assert np.abs(v[:, :61, 121].astype(np.int16) - np.stack(frames)[:, :, 120]).mean() < 4.0


def test_failure_in_frame_iterator_leaves_nothing(tmp_path):
    def frames():
        for t in range(3):
            yield gradient(64, 64, shift=t)
        raise RuntimeError("renderer crashed")

    with pytest.raises(RuntimeError, match="renderer crashed"):
        write_mp4(tmp_path / "x.mp4", frames(), 24.0)
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_existing_file(tmp_path):
    out = write_mp4(tmp_path / "x.mp4", [gradient(32, 64)], 24.0)
    before = out.read_bytes()
    with pytest.raises(ValueError, match="uint8"):
        write_mp4(out, [gradient(32, 64), np.zeros((32, 64, 3), np.float32)], 24.0)
    with pytest.raises(ValueError, match="size"):
        write_mp4(out, [gradient(32, 64), gradient(32, 66)], 24.0)
    with pytest.raises(ValueError, match="no frames"):
        write_mp4(out, [], 24.0)
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["x.mp4"]


def test_failure_while_injecting_leaves_nothing(tmp_path, monkeypatch):
    def broken(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(video, "inject_spherical", broken)
    with pytest.raises(OSError, match="disk full"):
        write_mp4(tmp_path / "s.mp4", [gradient(32, 64)], 24.0, spherical=True)
    assert list(tmp_path.iterdir()) == []


def test_progress_and_cancel(tmp_path):
    seen = []
    write_mp4(
        tmp_path / "p.mp4",
        [gradient(32, 32)] * 4,
        24.0,
        progress=lambda s, f, m: seen.append((s, f)),
    )
    assert seen[-1] == ("video", 1.0)
    fractions = [f for _, f in seen]
    assert fractions == sorted(fractions) and len(seen) >= 5

    token = CancelToken()

    def frames():
        yield gradient(32, 32)
        token.cancel()
        yield gradient(32, 32)

    with pytest.raises(Cancelled):
        write_mp4(tmp_path / "c.mp4", frames(), 24.0, progress=Progress("video", None, token))
    assert not (tmp_path / "c.mp4").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["p.mp4"]


def test_has_spherical_metadata_rejects_non_mp4(tmp_path):
    (tmp_path / "x.mp4").write_bytes(b"\x00\x00\x00\x10junkjunkjunkjunk")
    with pytest.raises(FormatError):
        has_spherical_metadata(tmp_path / "x.mp4")
    with pytest.raises(FileNotFoundError):
        read_mp4(tmp_path / "none.mp4")


def test_mp4s_are_faststart_by_default(tmp_path):
    """The index (moov) precedes the media data (mdat) at the top level: a browser or a
    headset starts playing before the whole file has arrived."""
    frames = [gradient(32, 64, s) for s in range(4)]
    for kw in ({}, {"spherical": True}):
        path = write_mp4(tmp_path / "v.mp4", frames, 24.0, **kw)
        top = [p[0] for p, _, _ in boxes(path) if len(p) == 1]
        assert top.index(b"moov") < top.index(b"mdat"), top


def test_progress_of_a_generator_counts_against_the_given_total(tmp_path):
    """A generator has no length: ``total`` gives the fraction; without it no '?' is shown."""
    frames = [np.zeros((16, 32, 3), np.uint8)] * 4
    seen = []
    write_mp4(tmp_path / "a.mp4", iter(frames), 8, total=4,
              progress=lambda s, f, m: seen.append((f, m)))  # fmt: skip
    assert [m for _, m in seen[:4]] == [f"encoded {i}/4 frames" for i in (1, 2, 3, 4)]
    assert [round(f, 3) for f, _ in seen[:4]] == [0.237, 0.475, 0.712, 0.95]
    seen.clear()
    write_mp4(tmp_path / "b.mp4", iter(frames[:2]), 8, progress=lambda s, f, m: seen.append(m))
    assert seen[:2] == ["encoded 1 frame", "encoded 2 frames"]
