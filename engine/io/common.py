"""Shared by the loaders: limits, one-line errors, quiet native decoders, file checks
and content sniffing."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator, Sequence
from typing import NoReturn

from ..errors import InputError

MIN_SIZE = (128, 256)  # (H, W)
MAX_SIZE = (8192, 16384)  # (H, W)
PANORAMA_ASPECT_TOLERANCE = 0.01  # W/H in [1.98, 2.02]
AUX_ASPECT_TOLERANCE = 0.02  # masks and depth: aspect within 2 % of the panorama's
REGIONS_FORMAT = "pano4d-regions"
REGIONS_VERSION = 1
MAX_SPEED_DEG_S = 90.0
MAX_FEATHER_PX = 1024.0
MAX_LABEL = 65535
_MAX_JSON_BYTES = 16 * 1024 * 1024

_PATHLIKE = str | os.PathLike

# Format names by extension, only used to phrase errors (content decides the decoder).
_EXTENSIONS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".jpe": "JPEG",
    ".webp": "WebP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".exr": "EXR",
    ".hdr": "HDR",
    ".pic": "HDR",
    ".rgbe": "HDR",
    ".npy": "NPY",
}
_FORMAT_NAMES = {
    "PNG": "PNG",
    "JPEG": "JPEG",
    "WebP": "WebP",
    "TIFF": "TIFF",
    "EXR": "OpenEXR",
    "HDR": "Radiance HDR",
    "NPY": "NumPy .npy",
}
_IMAGE_FORMATS = ("PNG", "JPEG", "WebP", "TIFF", "EXR", "HDR")
_PANORAMA_FORMATS = _IMAGE_FORMATS
_MASK_FORMATS = (*_IMAGE_FORMATS, "NPY")
_DEPTH_FORMATS = ("PNG", "TIFF", "EXR", "NPY")


# --------------------------------------------------------------------------------------------
# Errors and quiet native code


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _fail(path: _PATHLIKE | None, message: str) -> NoReturn:
    prefix = f"{os.fspath(path)}: " if path is not None else ""
    raise InputError(_one_line(prefix + message))


def _describe_exception(exc: BaseException) -> str:
    text = _one_line(str(exc))
    if len(text) > 160:
        text = text[:157] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


_QUIET_LOCK = threading.RLock()
_LOG = logging.getLogger(__name__)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence native decoders (libpng, OpenEXR, OpenCV) and library warnings while they run.

    The process-wide stdout/stderr file descriptors are pointed at a temporary file for the
    duration (POSIX only, under a lock); whatever was captured is logged at DEBUG level.
    """
    python_sink = io.StringIO()
    with (
        _QUIET_LOCK,
        warnings.catch_warnings(),
        contextlib.redirect_stdout(python_sink),
        contextlib.redirect_stderr(python_sink),
    ):
        warnings.simplefilter("ignore")
        tiff_logger = logging.getLogger("tifffile")
        old_level = tiff_logger.level
        tiff_logger.setLevel(logging.CRITICAL)
        saved: list[int] = []
        sink = None
        try:
            if os.name == "posix":
                try:
                    for stream in (sys.stdout, sys.stderr):
                        with contextlib.suppress(Exception):
                            stream.flush()
                    sink = tempfile.TemporaryFile()  # noqa: SIM115 - closed in finally
                    saved = [os.dup(1), os.dup(2)]
                    os.dup2(sink.fileno(), 1)
                    os.dup2(sink.fileno(), 2)
                except OSError:
                    for fd_target, fd_saved in zip((1, 2), saved):
                        os.dup2(fd_saved, fd_target)
                    for fd in saved:
                        os.close(fd)
                    saved = []
            yield
        finally:
            if saved:
                _flush_c_stdio()
                for fd_target, fd_saved in zip((1, 2), saved):
                    os.dup2(fd_saved, fd_target)
                for fd in saved:
                    os.close(fd)
            if sink is not None:
                with contextlib.suppress(Exception):
                    sink.seek(0)
                    captured = sink.read(4096).decode("utf-8", "replace").strip()
                    captured = (python_sink.getvalue()[:4096] + " " + captured).strip()
                    if captured:
                        _LOG.debug("decoder output: %s", _one_line(captured))
                sink.close()
            tiff_logger.setLevel(old_level)


def _flush_c_stdio() -> None:
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None).fflush(None)


# --------------------------------------------------------------------------------------------
# File checks and format sniffing


def _check_file(path: _PATHLIKE, role: str) -> int:
    """Existence / type / emptiness checks; returns the file size in bytes."""
    try:
        if not os.path.exists(path):
            _fail(path, f"file not found; expected an existing {role} file")
        if os.path.isdir(path):
            _fail(path, f"is a folder, not a file; expected a {role} file")
        if not os.path.isfile(path):  # a pipe or a device: reading it could block forever
            _fail(path, f"is not a regular file (a pipe or a device?); expected a {role} file")
        size = os.path.getsize(path)
    except (OSError, ValueError) as exc:
        _fail(path, f"cannot access the {role} file ({_describe_exception(exc)})")
    if size == 0:
        _fail(path, f"file is empty (0 bytes); expected a {role} file")
    return size


def _read_head(path: _PATHLIKE, role: str, n: int = 64) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(n)
    except OSError as exc:
        _fail(path, f"cannot read the {role} file ({_describe_exception(exc)})")


def _sniff(head: bytes) -> str | None:
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "TIFF"
    if head[:4] == b"\x76\x2f\x31\x01":
        return "EXR"
    if head.startswith((b"#?RADIANCE", b"#?RGBE")):
        return "HDR"
    if head.startswith(b"\x93NUMPY"):
        return "NPY"
    return None


def _list_formats(formats: Sequence[str]) -> str:
    names = [_FORMAT_NAMES[f] for f in formats]
    return ", ".join(names[:-1]) + " or " + names[-1]


def _detect_format(path: _PATHLIKE, role: str, allowed: Sequence[str]) -> str:
    _check_file(path, role)
    fmt = _sniff(_read_head(path, role))
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if fmt is None:
        if ext in _EXTENSIONS:
            name = _FORMAT_NAMES[_EXTENSIONS[ext]]
            _fail(
                path,
                f"not a valid {name} file (unrecognised content: corrupt, truncated or "
                f"misnamed); expected a {role} in {_list_formats(allowed)}",
            )
        shown = f"'{ext}'" if ext else "(no extension)"
        _fail(
            path,
            f"unsupported file type {shown}; expected a {role} in {_list_formats(allowed)}",
        )
    if fmt not in allowed:
        _fail(
            path,
            f"is a {_FORMAT_NAMES[fmt]} file, which is not accepted for a {role}; "
            f"expected {_list_formats(allowed)}",
        )
    return fmt
