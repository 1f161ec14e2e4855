"""MP4 video output: H.264 equirectangular panoramas (with 360° metadata) and previews.

:func:`write_mp4` encodes ``uint8 [H, W, 3]`` RGB frames with the ffmpeg binary bundled with
``imageio-ffmpeg`` (no system ffmpeg needed): H.264 (libx264), yuv420p, constant quality
``crf`` (0 = lossless in YUV, 18 = visually lossless, 23 = x264 default, 51 = worst), BT.709
colour matrix, limited range, tagged as such so players and ffmpeg decode the same colours.

Sizes: yuv420p needs an even width and height. A frame with an odd width or height is padded
by repeating its last column / row, so the video is one pixel wider / taller than the frames
(e.g. 1001x501 -> 1002x502); even sizes (4096x2048 equirect included) are kept exactly.

The file is written atomically: encoded into a hidden temporary file in the destination
folder and renamed into place at the end. If anything fails (a frame iterator raising,
cancellation, ffmpeg exiting with an error) the temporary file is removed and nothing is left
at the destination.

360° metadata (``spherical=True``), added after encoding by rewriting the MP4 box tree:

- Spherical Video **V1** (google/spatial-media ``docs/spherical-video-rfc.md``): a
  ``uuid`` box with UUID ``ffcc8263-f855-4a93-8814-587a02521fdd`` inside the video
  ``trak``, holding RDF/XML with ``GSpherical:Spherical=true``, ``Stitched=true``,
  ``ProjectionType=equirectangular``, ``StitchingSoftware=Pano4D``. Read by YouTube,
  Facebook and most 360° players.
- Spherical Video **V2** (``docs/spherical-video-v2-rfc.md``): ``st3d`` (monoscopic) and
  ``sv3d`` { ``svhd``, ``proj`` { ``prhd`` (zero pose), ``equi`` (no cropping) } } inside the
  video sample entry (``avc1``), right after ``avcC``. ffmpeg reports it as
  ``spherical: equirectangular``.

Box sizes of every ancestor (sample entry, stsd, stbl, minf, mdia, trak, moov) are updated,
and if ``moov`` precedes ``mdat`` (``faststart=True``) every ``stco``/``co64`` chunk offset
behind it is shifted by the number of inserted bytes, so both layouts stay playable.
"""

from __future__ import annotations

import itertools
import math
import os
import struct
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .errors import FormatError, InputError, Pano4DError
from .fsutil import atomic_dir, atomic_file, check_replaceable
from .progress import Progress, ProgressCallback

PathLike = str | os.PathLike[str]

# the frame rates a scene or video may have: ffmpeg's encoders refuse rates far outside
FPS_RANGE = (0.1, 240.0)


def fps_ok(fps: float) -> bool:
    """Is ``fps`` a frame rate the encoders take (:data:`FPS_RANGE`)?"""
    return math.isfinite(fps) and FPS_RANGE[0] <= fps <= FPS_RANGE[1]


SPHERICAL_UUID = bytes.fromhex("ffcc8263f8554a938814587a02521fdd")
SPHERICAL_XML = (
    '<?xml version="1.0"?>'
    '<rdf:SphericalVideo xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
    'xmlns:GSpherical="http://ns.google.com/videos/1.0/spherical/">'
    "<GSpherical:Spherical>true</GSpherical:Spherical>"
    "<GSpherical:Stitched>true</GSpherical:Stitched>"
    "<GSpherical:StitchingSoftware>Pano4D</GSpherical:StitchingSoftware>"
    "<GSpherical:ProjectionType>equirectangular</GSpherical:ProjectionType>"
    "</rdf:SphericalVideo>"
)
_VISUAL_SAMPLE_ENTRY_FIELDS = 78  # bytes between a VisualSampleEntry header and its children
_COPY_CHUNK = 8 << 20
_TAGS = "setparams=colorspace=bt709:color_primaries=bt709:color_trc=bt709:range=tv"


# --------------------------------------------------------------------------- encoding


def _reporter(progress: Progress | ProgressCallback | None, stage: str) -> Progress | None:
    """Accept a :class:`Progress`, a bare ``(stage, fraction, message)`` callback or None."""
    if progress is None or isinstance(progress, Progress):
        return progress
    return Progress(stage, progress)


def _ffmpeg_exe() -> str:
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError) as e:
        raise InputError(f"no ffmpeg available to write video (imageio-ffmpeg: {e})") from None


def _check_frame(frame: object, size: tuple[int, int] | None) -> np.ndarray:
    a = np.asarray(frame)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"video frames must be uint8 [H, W, 3], got {a.dtype} {list(a.shape)}")
    if size is not None and a.shape[:2] != size:
        raise ValueError(f"video frame of size {a.shape[:2]} in a {size} video")
    if a.shape[0] % 2 or a.shape[1] % 2:
        a = np.pad(a, ((0, a.shape[0] % 2), (0, a.shape[1] % 2), (0, 0)), mode="edge")
    return np.ascontiguousarray(a)


def _encode_cmd(path: Path, w: int, h: int, fps: float, crf: int, faststart: bool) -> list[str]:
    rate = str(Fraction(fps).limit_denominator(100_000))
    cmd = [_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y"]
    cmd += ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", rate, "-i", "-"]
    cmd += ["-an", "-c:v", "libx264", "-crf", str(crf), "-pix_fmt", "yuv420p"]
    cmd += ["-vf", "scale=out_color_matrix=bt709:out_range=tv:flags=accurate_rnd," + _TAGS]
    cmd += ["-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709"]
    cmd += ["-color_range", "tv", *(["-movflags", "+faststart"] if faststart else [])]
    return [*cmd, "-f", "mp4", str(path)]


def _ffmpeg_failed(err: BinaryIO, rc: int | None) -> Pano4DError:
    err.seek(0)
    lines = [s.strip() for s in err.read().decode("utf-8", "replace").splitlines() if s.strip()]
    return Pano4DError(f"ffmpeg failed (exit {rc}): {lines[-1] if lines else 'no message'}")


def _encode(
    path: Path,
    frames: Iterable[np.ndarray],
    fps: float,
    crf: int,
    faststart: bool,
    rep: Progress | None,
    total: int | None = None,
) -> int:
    """Pipe the frames into ffmpeg; returns the number of frames written."""
    if total is None and hasattr(frames, "__len__"):
        total = len(frames)  # type: ignore[arg-type]
    it = iter(frames)
    first = next(it, None)
    if first is None:
        raise ValueError("write_mp4: no frames to write")
    first = np.asarray(first)
    size = first.shape[:2]
    w, h = _check_frame(first, None).shape[1::-1]
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            _encode_cmd(path, w, h, fps, crf, faststart),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        assert proc.stdin is not None
        n = 0
        try:
            for frame in itertools.chain([first], it):
                proc.stdin.write(_check_frame(frame, size).data)
                n += 1
                if rep:
                    frac = 0.95 * min(n, total) / total if total else 0.0
                    rep.update(
                        frac,
                        f"encoded {n}/{total} frames"
                        if total
                        else f"encoded {n} frame{'s' * (n > 1)}",
                    )
            proc.stdin.close()
            rc = proc.wait()
        except BrokenPipeError:
            proc.kill()
            raise _ffmpeg_failed(err, proc.wait()) from None
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        if rc != 0:
            raise _ffmpeg_failed(err, rc)
    return n


def write_mp4(
    path: PathLike,
    frames: Iterable[np.ndarray],
    fps: float,
    *,
    spherical: bool = False,
    crf: int = 18,
    faststart: bool = True,
    progress: Progress | ProgressCallback | None = None,
    total: int | None = None,
) -> Path:
    """Encode uint8 ``[H, W, 3]`` RGB frames to an H.264 MP4 at ``path`` (atomically).

    ``spherical`` adds 360° equirectangular metadata (V1 and V2, see the module docstring).
    ``faststart`` (the default) puts the index (``moov``) before the media data, so a web
    page or a headset can start playing before the whole file has arrived.
    ``progress`` is a :class:`Progress` or a ``(stage, fraction, message)`` callback
    (stage ``"video"``); the fraction is known when ``frames`` has a length or ``total``
    gives the number of frames a generator yields.
    The parent folder is created if needed. Returns ``path``.
    """
    path = Path(path)
    if not fps_ok(fps):
        raise ValueError(f"fps must be within {FPS_RANGE[0]:g}..{FPS_RANGE[1]:g}, got {fps}")
    if not (isinstance(crf, int) and 0 <= crf <= 51):
        raise ValueError(f"crf must be an integer in 0..51, got {crf!r}")
    rep = _reporter(progress, "video")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path, suffix=".mp4") as tmp:
        _encode(tmp, frames, fps, crf, faststart, rep, total)
        if spherical:
            if rep:
                rep.update(0.97, "adding 360° metadata")
            with atomic_file(tmp, suffix=".mp4") as tmp2:
                inject_spherical(tmp, tmp2)
    if rep:
        rep.update(1.0, f"wrote {path.name}")
    return path


def read_mp4(path: PathLike) -> np.ndarray:
    """Decode every frame of a video to a ``[T, H, W, 3]`` uint8 RGB array (for tests)."""
    import imageio_ffmpeg

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    gen = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
    w, h = next(gen)["size"]
    frames = [np.frombuffer(b, np.uint8).reshape(h, w, 3) for b in gen]
    return np.stack(frames) if frames else np.zeros((0, h, w, 3), np.uint8)


# --------------------------------------------------------------------------- MP4 boxes


@dataclass(frozen=True)
class _Box:
    type: bytes
    start: int  # offset of the size field
    header: int  # 8, or 16 with a 64-bit size
    end: int

    @property
    def body(self) -> int:
        return self.start + self.header


def _box_at(head: bytes, pos: int, limit: int) -> _Box:
    """Parse the box header in ``head`` (the bytes at ``pos``); the box must end by ``limit``."""
    if len(head) < 8:
        raise FormatError(f"truncated MP4 box header at byte {pos}")
    size, typ = struct.unpack_from(">I4s", head)
    header = 8
    if size == 1:
        if len(head) < 16:
            raise FormatError(f"truncated MP4 box header at byte {pos}")
        size, header = struct.unpack_from(">Q", head, 8)[0], 16
    elif size == 0:  # extends to the end of its container
        size = limit - pos
    if size < header or pos + size > limit:
        raise FormatError(f"corrupt MP4 box {typ!r} at byte {pos} (size {size})")
    return _Box(typ, pos, header, pos + size)


def _children(buf: bytes | bytearray, start: int, end: int) -> list[_Box]:
    out, pos = [], start
    while pos + 8 <= end:
        box = _box_at(bytes(buf[pos : pos + 16]), pos, end)
        out.append(box)
        pos = box.end
    return out


def _top_level(f: BinaryIO) -> list[_Box]:
    size = f.seek(0, os.SEEK_END)
    out, pos = [], 0
    while pos + 8 <= size:
        f.seek(pos)
        box = _box_at(f.read(16), pos, size)
        out.append(box)
        pos = box.end
    return out


def _child(buf: bytes | bytearray, parent: _Box, typ: bytes, skip: int = 0) -> _Box | None:
    return next((b for b in _children(buf, parent.body + skip, parent.end) if b.type == typ), None)


def _path(buf: bytes | bytearray, root: _Box, types: list[bytes]) -> list[_Box] | None:
    """``[root, child, grandchild, ...]`` following ``types``, or None if a level is missing."""
    chain = [root]
    for typ in types:
        skip = 8 if chain[-1].type == b"stsd" else 0  # version/flags + entry_count
        nxt = _child(buf, chain[-1], typ, skip)
        if nxt is None:
            return None
        chain.append(nxt)
    return chain


def _video_traks(moov: bytes | bytearray) -> list[_Box]:
    root = _box_at(bytes(moov[:16]), 0, len(moov))
    out = []
    for trak in (b for b in _children(moov, root.body, root.end) if b.type == b"trak"):
        chain = _path(moov, trak, [b"mdia", b"hdlr"])
        if chain and moov[chain[-1].body + 8 : chain[-1].body + 12] == b"vide":
            out.append(trak)
    return out


def _sample_entry(moov: bytes | bytearray, trak: _Box) -> list[_Box] | None:
    """``[trak, mdia, minf, stbl, stsd, entry]`` for the first sample description."""
    chain = _path(moov, trak, [b"mdia", b"minf", b"stbl", b"stsd"])
    if chain is None:
        return None
    stsd = chain[-1]
    entries = _children(moov, stsd.body + 8, stsd.end)
    return [*chain, entries[0]] if entries else None


def _entry_children(moov: bytes | bytearray, entry: _Box) -> list[_Box]:
    return _children(moov, entry.body + _VISUAL_SAMPLE_ENTRY_FIELDS, entry.end)


def _has_v1(moov: bytes | bytearray, trak: _Box) -> bool:
    for b in _children(moov, trak.body, trak.end):
        if b.type == b"uuid" and moov[b.body : b.body + 16] == SPHERICAL_UUID:
            xml = bytes(moov[b.body + 16 : b.end]).decode("utf-8", "replace")
            return "<GSpherical:Spherical>true</GSpherical:Spherical>" in xml
    return False


def _has_v2(moov: bytes | bytearray, trak: _Box) -> bool:
    chain = _sample_entry(moov, trak)
    return bool(chain) and any(b.type == b"sv3d" for b in _entry_children(moov, chain[-1]))


def _read_moov(f: BinaryIO) -> tuple[_Box, bytes, int]:
    """The top-level ``moov`` box, its bytes and the file size; FormatError if not an MP4."""
    try:
        boxes = _top_level(f)
    except FormatError as e:
        raise FormatError(f"{getattr(f, 'name', 'video')}: not a valid MP4 ({e})") from None
    moov = next((b for b in boxes if b.type == b"moov"), None)
    if moov is None:
        raise FormatError(f"{getattr(f, 'name', 'video')}: not an MP4 file (no 'moov' box)")
    f.seek(moov.start)
    data = f.read(moov.end - moov.start)
    return moov, data, f.seek(0, os.SEEK_END)


def has_spherical_metadata(path: PathLike, version: int | None = None) -> bool:
    """Whether a video track carries 360° metadata: V1 (``uuid``), V2 (``sv3d``) or either."""
    with open(path, "rb") as f:
        _, moov, _ = _read_moov(f)
    traks = _video_traks(moov)
    v1 = any(_has_v1(moov, t) for t in traks)
    v2 = any(_has_v2(moov, t) for t in traks)
    if version not in (None, 1, 2):
        raise ValueError(f"spherical metadata version must be 1, 2 or None, got {version!r}")
    return {None: v1 or v2, 1: v1, 2: v2}[version]


# --------------------------------------------------------------------------- injection


def _box(typ: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), typ) + payload


def _full_box(typ: bytes, payload: bytes, version: int = 0, flags: int = 0) -> bytes:
    return _box(typ, struct.pack(">I", (version << 24) | flags) + payload)


def _v1_box() -> bytes:
    return _box(b"uuid", SPHERICAL_UUID + SPHERICAL_XML.encode("utf-8"))


def _v2_boxes() -> bytes:
    st3d = _full_box(b"st3d", bytes([0]))  # monoscopic
    svhd = _full_box(b"svhd", b"Pano4D\0")
    prhd = _full_box(b"prhd", struct.pack(">iii", 0, 0, 0))  # yaw, pitch, roll (16.16)
    equi = _full_box(b"equi", struct.pack(">IIII", 0, 0, 0, 0))  # no cropping (0.32)
    return st3d + _box(b"sv3d", svhd + _box(b"proj", prhd + equi))


def _insert(buf: bytearray, ancestors: list[_Box], pos: int, data: bytes) -> None:
    """Insert ``data`` at ``pos`` and grow the size of every box in ``ancestors``."""
    for box in ancestors:
        (size32,) = struct.unpack_from(">I", buf, box.start)
        if size32 == 1:
            (size64,) = struct.unpack_from(">Q", buf, box.start + 8)
            struct.pack_into(">Q", buf, box.start + 8, size64 + len(data))
        elif size32 != 0:  # 0 = "to the end", still true
            if size32 + len(data) >= 1 << 32:
                raise Pano4DError(f"MP4 box {box.type!r} too large to add 360° metadata")
            struct.pack_into(">I", buf, box.start, size32 + len(data))
    buf[pos:pos] = data


def _root(moov: bytearray) -> _Box:
    return _box_at(bytes(moov[:16]), 0, len(moov))


def _add_v2(moov: bytearray) -> None:
    trak = _video_traks(moov)[0]
    chain = _sample_entry(moov, trak)
    if chain is None or chain[-1].end - chain[-1].body < _VISUAL_SAMPLE_ENTRY_FIELDS:
        raise Pano4DError("cannot add 360° metadata: no visual sample entry in the video track")
    entry = chain[-1]
    config = [b for b in _entry_children(moov, entry) if b.type in (b"avcC", b"hvcC")]
    pos = config[0].end if config else entry.end
    _insert(moov, [_root(moov), *chain], pos, _v2_boxes())


def _add_v1(moov: bytearray) -> None:
    trak = _video_traks(moov)[0]
    _insert(moov, [_root(moov), trak], trak.end, _v1_box())


def _shift_chunk_offsets(moov: bytearray, after: int, delta: int) -> None:
    """Add ``delta`` to every stco/co64 entry pointing at or beyond file offset ``after``."""
    root = _root(moov)
    for trak in (b for b in _children(moov, root.body, root.end) if b.type == b"trak"):
        chain = _path(moov, trak, [b"mdia", b"minf", b"stbl"])
        for table in _children(moov, chain[-1].body, chain[-1].end) if chain else []:
            if table.type not in (b"stco", b"co64"):
                continue
            fmt, width = (">I", 4) if table.type == b"stco" else (">Q", 8)
            (count,) = struct.unpack_from(">I", moov, table.body + 4)
            for i in range(count):
                at = table.body + 8 + i * width
                (off,) = struct.unpack_from(fmt, moov, at)
                if off >= after:
                    if off + delta >= 1 << (8 * width):
                        raise Pano4DError("cannot add 360° metadata: chunk offset overflow")
                    struct.pack_into(fmt, moov, at, off + delta)


def _copy_range(src: BinaryIO, dst: BinaryIO, start: int, end: int) -> None:
    src.seek(start)
    left = end - start
    while left > 0:
        chunk = src.read(min(_COPY_CHUNK, left))
        if not chunk:
            raise FormatError("MP4 file shorter than its boxes say")
        dst.write(chunk)
        left -= len(chunk)


def inject_spherical(src: PathLike, dst: PathLike) -> None:
    """Copy the MP4 ``src`` to ``dst`` with V1 and V2 equirectangular 360° metadata added.

    Does nothing beyond a copy if the video track already carries V1 and V2 metadata.
    """
    with open(src, "rb") as f, open(dst, "wb") as out:
        box, old, size = _read_moov(f)
        moov = bytearray(old)
        if not _video_traks(moov):
            raise Pano4DError(f"{src}: no video track to tag as 360°")
        trak = _video_traks(moov)[0]
        if not _has_v2(moov, trak):
            _add_v2(moov)
        if not _has_v1(moov, _video_traks(moov)[0]):
            _add_v1(moov)
        _shift_chunk_offsets(moov, box.end, len(moov) - len(old))
        _copy_range(f, out, 0, box.start)
        out.write(moov)
        _copy_range(f, out, box.end, size)


__all__ = [
    "SPHERICAL_UUID",
    "has_spherical_metadata",
    "inject_spherical",
    "read_mp4",
    "write_mp4",
]


def write_png_frames(folder: PathLike, frames: Iterable[np.ndarray]) -> list[Path]:
    """Write uint8 ``[H, W, 3]`` RGB frames as lossless ``frame_0000.png``, ... in ``folder``.

    The folder is written whole (a temporary folder renamed into place), so an interrupted
    render leaves no partial sequence. An existing folder is replaced only if it is empty or
    holds nothing but ``frame_*.png`` files (an earlier render); anything else is refused.
    """
    import cv2

    out = Path(folder)
    check_replaceable(out, "frame_", ".png")
    names = []
    with atomic_dir(out) as tmp:
        for i, frame in enumerate(frames):
            rgb = np.ascontiguousarray(frame[..., ::-1])  # OpenCV writes BGR
            if not cv2.imwrite(str(tmp / f"frame_{i:04d}.png"), rgb):
                raise OSError(f"cannot write {tmp / f'frame_{i:04d}.png'}")
            names.append(f"frame_{i:04d}.png")
    return [out / n for n in names]
