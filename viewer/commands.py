"""Viewer commands added to the command line by ``main.py`` (engine never imports viewer).

``render SCENE --out video.mp4|DIR/ [--backend auto|gl|torch] [--tour look-around|orbit|PATH]``
renders a camera tour of a scene to an MP4, or to lossless PNG frames ``DIR/frame_NNNN.png``
(when ``--out`` ends with a slash, is an existing folder or has no file suffix) for
compositing and exact comparisons. ``gl`` is the real-time OpenGL splat renderer
drawing into an offscreen framebuffer (EGL, no window); ``torch`` is the pure-torch
reference rasteriser; ``auto`` uses OpenGL when a context can be made and says which.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from engine.cli import (
    TerminalProgress,
    cancel_on_sigint,
    fov_degrees,
    frame_rate,
    parse_size,
)
from engine.errors import InputError
from engine.fsutil import check_writable
from engine.progress import CancelToken, Progress
from engine.scene import Scene4D, open_scene
from engine.tour import make_tour
from engine.video import write_mp4, write_png_frames


def gl_frames(scene: Scene4D, views, progress: Progress) -> Iterator[np.ndarray]:
    """uint8 frames of ``scene`` along ``views`` with the OpenGL renderer (offscreen)."""
    from engine.pipeline import render_tour

    from .offscreen import OffscreenRenderer

    renderer = OffscreenRenderer(views[0].width, views[0].height)
    try:
        yield from render_tour(scene, views, progress, renderer.render)
    finally:
        renderer.close()


def choose_backend(requested: str) -> str:
    """ "gl" or "torch" for a --backend setting; "gl" without a context is an input error."""
    if requested == "torch":
        return "torch"
    try:
        from .gl.context import has_gl

        ok, reason = has_gl()
    except ImportError as e:  # PyOpenGL or the GL module missing
        ok, reason = False, str(e)
    if ok:
        return "gl"
    if requested == "gl":
        raise InputError(f"--backend gl: no OpenGL context can be made here ({reason})")
    print(
        f"note: OpenGL unavailable ({reason}); rendering with the pure-torch rasteriser",
        file=sys.stderr,
    )
    return "torch"


def cmd_render(args: argparse.Namespace) -> int:
    from engine.pipeline import render_tour

    out, png = Path(args.out), wants_frames(args.out)
    if not png and out.suffix.lower() != ".mp4":
        raise InputError(
            f"--out {args.out}: expected a .mp4 file or a folder (DIR/) for PNG frames"
        )
    check_writable(out)
    scene = open_scene(args.scene, axes=args.axes)
    if args.frames < 1:
        raise InputError(f"--frames must be at least 1, got {args.frames}")
    views = make_tour(args.tour, args.frames, args.size, args.fov)
    backend = choose_backend(args.backend)
    bar = TerminalProgress()
    cancel = CancelToken()
    progress = Progress("render", bar, cancel)
    with cancel_on_sigint(cancel):
        try:
            if backend == "gl":
                frames = gl_frames(scene, views, progress)
            else:
                frames = render_tour(scene, views, progress)
            if png:
                write_png_frames(out, frames)
            else:
                write_mp4(out, frames, args.fps or scene.fps)
        finally:
            bar.close()
    what = "PNG frames in" if png else ""
    print(f"wrote {what} {out} ({len(views)} frames, {backend} renderer)".replace("  ", " "))
    return 0


def wants_frames(out: str) -> bool:
    """Does ``--out`` name a folder of PNG frames (trailing slash, a folder, no suffix)?"""
    p = Path(out)
    return out.endswith(("/", "\\")) or p.is_dir() or p.suffix == ""


def register(sub) -> None:
    """Add the viewer's commands to the CLI's subparsers."""
    r = sub.add_parser("render", help="render a camera tour of a scene to an MP4")
    r.add_argument(
        "scene",
        help="a scene folder, a generate output folder, a splat file or a frame_*.ply folder",
    )
    from engine.cli import add_axes_option

    add_axes_option(r)
    r.add_argument(
        "--out", required=True, help="output .mp4, or a folder DIR/ for lossless PNG frames"
    )
    r.add_argument("--backend", default="auto", choices=["auto", "gl", "torch"])
    r.add_argument(
        "--tour",
        default="look-around",
        help="look-around (default), orbit, or a camera path file (JSON keyframes)",
    )
    r.add_argument("--size", type=parse_size, default=(288, 512), help="WxH, default 512x288")
    r.add_argument("--frames", type=int, default=48)
    r.add_argument("--fps", type=frame_rate, help="default: the scene's fps")
    r.add_argument("--fov", type=fov_degrees, default=90.0, help="horizontal, degrees (1..170)")
    r.set_defaults(func=cmd_render)

    from .xr import register_xr  # `xr SCENE [--frames N]`: headset mode (OpenXR)

    register_xr(sub)
