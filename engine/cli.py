"""Command line (DESIGN.md section 7): demo, generate, batch, render, export, info.

Exit codes: 0 success; 2 bad input or missing resource (one line on stderr, no traceback,
nothing half-written; a file-system refusal on a path the user gave is one too); 130
cancelled (Ctrl-C or SIGTERM; ``generate --resume`` continues). Exit 1: running out of
memory (host or GPU; one line saying what to try — not 2, since the same input can run on
a larger machine or preset), or an unexpected internal error (one line and the path of a
log with the traceback).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from .errors import Cancelled, InputError, Pano4DError
from .fsutil import check_writable, tree_size
from .metrics import db_text
from .progress import CancelToken, StageEstimate, clock, estimate_remaining

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "resources" / "samples"


class TerminalProgress:
    """A progress bar on stderr: redrawn in place on a terminal, one line per 10% otherwise.
    ``estimate``: a generate run's stages (time left from measured stage rates); without it
    the time left is the average rate so far."""

    def __init__(
        self,
        stream=None,
        width: int = 28,
        note: str | None = None,
        estimate: StageEstimate | None = None,
    ) -> None:
        self.stream = stream or sys.stderr
        self.note = note  # printed once the inputs are loaded (bad input stays one line)
        self.tty = self.stream.isatty()
        self.width = width
        self.estimate = estimate
        self.t0 = time.monotonic()
        self.last_draw = 0.0
        self.last_decile = -1
        self.last_stage = ""

    def _left(self, elapsed: float, fraction: float) -> float | None:
        if self.estimate is None:
            return estimate_remaining(elapsed, fraction)
        return self.estimate.remaining()

    def __call__(self, stage: str, fraction: float, message: str) -> None:
        if self.estimate is not None:
            self.estimate.update(stage, fraction)
            fraction = self.estimate.fraction()
        if stage == "load":  # quick; and a bad input must stay a single line on stderr
            return
        if self.note:
            self.stream.write(self.note + "\n")
            self.note = None
        now = time.monotonic()
        elapsed = now - self.t0
        decile = int(fraction * 10)
        if self.tty:
            if now - self.last_draw < 0.1 and fraction < 1.0 and stage == self.last_stage:
                return
            filled = int(self.width * fraction)
            bar = "#" * filled + "-" * (self.width - filled)
            left = self._left(elapsed, fraction)
            eta_s = "" if left is None else f" {clock(left)} left"
            head = f"\r[{bar}] {100 * fraction:5.1f}% {stage:<8} {clock(elapsed)}{eta_s}"
            line = f"{head}  {message[:40]}"
            self.stream.write(line.ljust(110)[:110])
            self.stream.flush()
        elif decile != self.last_decile or stage != self.last_stage:
            self.stream.write(f"{100 * fraction:5.1f}% {stage:<8} {clock(elapsed)}  {message}\n")
            self.stream.flush()
        self.last_draw, self.last_decile, self.last_stage = now, decile, stage

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _is_gpu_oom(e: BaseException) -> bool:
    """torch.OutOfMemoryError is a RuntimeError, not a MemoryError."""
    import torch

    return isinstance(e, torch.OutOfMemoryError)


# ----------------------------------------------------------------------------------------
# commands


def _generate(args: argparse.Namespace, inputs, cfg) -> int:
    from . import pipeline
    from .lift.raster import has_gsplat

    note = None
    if args.device == "cpu" or not has_gsplat():
        note = "note: lifting runs on the CPU with the pure-torch rasteriser (no CUDA/gsplat)"
    check_writable(args.out, inside=True)
    cancel = CancelToken()
    estimate = StageEstimate(pipeline.stage_spans(cfg.text is not None))
    bar = TerminalProgress(note=note, estimate=estimate)
    with cancel_on_sigint(cancel):
        try:
            report = pipeline.run(
                inputs, cfg, Path(args.out), callback=bar, cancel=cancel, resume=args.resume
            )
        finally:
            bar.close()
    _print_summary(Path(args.out), report)
    return 0


def _print_notes(report: dict) -> None:
    for name, how in report.get("regions_understood", {}).items():
        print(f"region:   {name}: {how}")
    for note in report.get("notes", []):
        print(f"note:     {note}")


def cmd_generate(args: argparse.Namespace) -> int:
    from .config import OPTIONS, prepare

    options = {k: getattr(args, k) for k in OPTIONS if getattr(args, k, None) not in (None, [])}
    prepared = prepare(options)  # every option checked, as a batch job's are
    if args.out is None:  # the summary at the end names it
        args.out = str(default_out(args.panorama, args.prompt))
    return _generate(args, *prepared)


def default_out(panorama: str | None, prompt: str | None) -> Path:
    """``out/NAME`` for a generate run without ``--out`` (NAME: :func:`fsutil.run_name`, the
    panorama's name or the prompt's first words: "out/misty-alpine-lake-at")."""
    from .fsutil import run_name

    return Path("out") / run_name(panorama, prompt)


def cmd_demo(args: argparse.Namespace) -> int:
    from .config import Inputs, build_config

    pano = SAMPLE / "park_2048x1024.png"
    regions = SAMPLE / "park_regions.json"
    if not pano.is_file() or not regions.is_file():
        raise InputError(f"the bundled sample is missing from {SAMPLE}; reinstall Pano4D")
    check_writable(args.out, inside=True)
    print(
        f"demo: animating the sky and trees of {pano.name} (CC0, Poly Haven) -> {args.out}/",
        file=sys.stderr,
    )
    args.resume = getattr(args, "resume", False)
    args.device = "auto"
    cfg = build_config(args.preset)
    return _generate(args, Inputs(panorama=pano, regions=regions), cfg)


def cmd_batch(args: argparse.Namespace) -> int:
    from .batch import BatchConfig, load_jobs, run_batch
    from .batch.display import BatchTerminal

    if args.max_parallel is not None and args.max_parallel < 1:
        raise InputError(f"--max-parallel must be at least 1, got {args.max_parallel}")
    jobs = load_jobs(Path(args.jobs))  # every entry checked before any job starts
    check_writable(args.out, inside=True)
    cfg = BatchConfig(cluster=args.cluster, max_parallel=args.max_parallel, resume=args.resume)
    cancel = CancelToken()
    screen = BatchTerminal()
    with cancel_on_sigint(cancel):
        state = run_batch(
            jobs, Path(args.out), cfg, jobs_file=Path(args.jobs), on_change=screen, cancel=cancel
        )
    screen.close(state)
    counts = state.counts()
    print(f"batch:    {Path(args.out) / 'batch.json'}")
    if counts["cancelled"] or counts["pending"]:
        print("cancelled; run the same command with --resume to continue", file=sys.stderr)
        return 130
    if counts["failed"]:
        print(f"error: {counts['failed']} job(s) failed (reasons in batch.json)", file=sys.stderr)
        return 1
    return 0


def _print_summary(out: Path, r: dict) -> None:
    print(
        f"scene:    {out / 'scene'}  ({r['bytes_on_disk'] / 1e6:.1f} MB, "
        f"{r['gaussians_static']} static + {r['gaussians_dynamic_per_frame']} x {r['frames']} "
        "dynamic Gaussians)"
    )
    print(f"videos:   {out / 'panorama.mp4'} (360), {out / 'preview.mp4'}")
    print(
        f"quality:  {r['gaussians_per_input_pixel']:.2f} Gaussians per input pixel, "
        f"PSNR {db_text(r['psnr_native'])} at the input's own resolution (static areas, "
        f"{r['psnr_native_resolution'].split(' from')[0]}), "
        f"{db_text(r.get('psnr_headset'))} magnified as in a headset, static max "
        f"error {r['static_max_error']}"
    )
    _print_notes(r)
    print(f"report:   {out / 'report.json'}  total {sum(r['timings_s'].values()):.0f} s")


def scene_folder(path: str) -> Path:
    """A scene folder, or a `generate` output folder that holds one in scene/."""
    p = Path(path)
    if not (p / "manifest.json").exists() and (p / "scene" / "manifest.json").is_file():
        return p / "scene"
    return p


def cmd_info(args: argparse.Namespace) -> int:
    from .scene import MANIFEST, open_scene, scene_info

    folder = scene_folder(args.scene)
    if folder.is_dir() and (folder / MANIFEST).is_file():
        info = scene_info(folder)
    else:  # a splat file or a PLY sequence: read it
        scene = open_scene(args.scene, axes=args.axes)
        lo, hi = scene.bounds()
        info = {
            "path": str(Path(args.scene)),
            "format": _format_name(Path(args.scene)),
            "axes_in_file": scene.meta.get("axes"),
            "frames": scene.n_frames,
            "fps": scene.fps,
            "sh_degree": scene.static.sh_degree,
            "gaussians": {"static": len(scene.static), "dynamic_per_frame": len(scene.dynamic[0])},
            "bounds": {"min": lo, "max": hi},
            "bytes_on_disk": tree_size(args.scene),
        }
    try:
        print(json.dumps(info, indent=2, default=str), flush=True)
    except BrokenPipeError:  # `info SCENE | head`: the reader has what it wanted
        with contextlib.suppress(OSError):  # nothing more reaches the closed pipe at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def _format_name(p: Path) -> str:
    if p.is_dir():
        return "PLY sequence"
    name = p.name.lower()
    kinds = {".compressed.ply": "compressed PLY", ".ply": "3DGS PLY", ".spz": "SPZ",
             ".splat": "splat", ".glb": "glTF (KHR_gaussian_splatting)"}  # fmt: skip
    return next((what for suffix, what in kinds.items() if name.endswith(suffix)), p.suffix)


def cmd_export(args: argparse.Namespace) -> int:
    from .scene import open_scene
    from .splats import format_for, write_splats

    fmt = args.format or format_for(args.out)
    if fmt is None:
        raise InputError(
            f"--out {args.out}: cannot tell the format from its suffix; give --format (or end "
            "it with .ply, .compressed.ply, .spz, .splat, .glb, or no suffix for PLY frames)"
        )
    check_writable(args.out)
    scene = open_scene(scene_folder(args.scene), axes=args.axes)
    out = Path(args.out)
    bar = TerminalProgress()
    try:
        paths = write_splats(scene, out, fmt, axes=args.out_axes, frame=args.frame,
                             progress=bar)  # fmt: skip
    finally:
        bar.close()
    total = sum(tree_size(p) for p in paths)
    frames = scene.n_frames if len(paths) > 1 or fmt == "native" else 1
    print(f"wrote {len(paths)} file(s) to {out}: {total / 1e6:.1f} MB, "
          f"{total / max(1, frames) / 1e6:.2f} MB per frame")  # fmt: skip
    return 0


def add_axes_option(parser: argparse.ArgumentParser) -> None:
    """--axes: how an opened splat file is stored (auto: its header, else its format's
    convention; see engine.splats)."""
    parser.add_argument(
        "--axes",
        default="auto",
        choices=["auto", "y-up", "y-down"],
        help="the input file's up axis: auto (its header, else the format's convention: 3DGS "
        "files y-down, glTF and native scenes y-up)",
    )


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 1280x720, got '{text}'") from None
    if not (16 <= w <= 8192 and 16 <= h <= 8192):
        raise argparse.ArgumentTypeError(f"size {text} is outside 16..8192 per side")
    return h, w


# ----------------------------------------------------------------------------------------
# parser and entry point


def fov_degrees(text: str) -> float:
    """A horizontal field of view for a pinhole camera: 1..170 degrees."""
    v = positive_float(text)
    if not 1.0 <= v <= 170.0:
        raise argparse.ArgumentTypeError(f"field of view must be within 1..170 degrees, got {text}")
    return v


def positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: '{text}'") from None
    if not v > 0 or v != v:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return v


def frame_rate(text: str) -> float:
    """A frame rate the video encoders take (engine.video.FPS_RANGE)."""
    from .video import FPS_RANGE, fps_ok

    v = positive_float(text)
    if not fps_ok(v):
        lo, hi = FPS_RANGE
        raise argparse.ArgumentTypeError(f"frame rate must be within {lo:g}..{hi:g}, got {text}")
    return v


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit 2) instead of usage + error."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"error: {message} (see: {self.prog} --help)\n")


def build_parser(plugins: Sequence[Callable] = ()) -> argparse.ArgumentParser:
    """The command line. Each plugin is called with the subparsers object and adds its own
    commands (the viewer adds `render`, so that engine never imports the viewer)."""
    from .presets import DEFAULT_PRESET, PRESETS

    p = _Parser(
        prog="main.py", description="Pano4D: a static 360° panorama -> an explorable 4D scene."
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def add_run_options(
        sp: argparse.ArgumentParser, out_default: str | None, out_help: str = "output folder"
    ) -> None:
        sp.add_argument(
            "--preset", default=DEFAULT_PRESET, choices=list(PRESETS), help="quality/speed preset"
        )
        sp.add_argument("--out", default=out_default, help=out_help)
        sp.add_argument(
            "--resume", action="store_true", help="continue an interrupted run in --out"
        )

    d = sub.add_parser("demo", help="bundled sample -> generate -> videos (no weights, CPU)")
    add_run_options(d, "demo_out")
    d.set_defaults(func=cmd_demo)

    g = sub.add_parser("generate", help="animate a panorama and lift it into a 4D scene")
    g.add_argument(
        "panorama",
        nargs="?",
        help="equirectangular image (2:1): JPEG, PNG, WebP, TIFF, EXR, HDR; omit it to make "
        "the panorama from --prompt with --text-model",
    )
    g.add_argument("--mask", help="image of one region to animate (nonzero = animate)")
    g.add_argument("--regions", help="region file (JSON) with several regions and their motion")
    g.add_argument(
        "--region",
        action="append",
        default=[],
        metavar="'NAME: PROMPT'",
        help="a region found by its NAME with --seg-model and moved as PROMPT says "
        "('sky: clouds drift slowly left', 'trees: leaves swaying'); repeatable",
    )
    g.add_argument("--seg-model", metavar="PATH_OR_ID", help="CLIPSeg weights for --region")
    g.add_argument(
        "--text-model",
        metavar="PATH_OR_ID",
        help="text-to-image weights (a Stable Diffusion or SD3 pipeline folder, or a cached hub "
        "id): make the panorama from --prompt, fused on the sphere",
    )
    g.add_argument("--size", metavar="WxH", help="--text-model panorama size (default 2048x1024)")
    g.add_argument("--seed", type=int, help="--text-model seed")
    g.add_argument(
        "--direction",
        type=float,
        help="--mask motion direction in degrees (0 = right, 90 = up; default 0)",
    )
    g.add_argument(
        "--speed", type=float, help="--mask motion speed in degrees per second (default 2)"
    )
    g.add_argument(
        "--depth",
        help="depth (distance along the ray): one panorama (PNG16 in mm, EXR, TIFF, NPY) for "
        "every frame, or per frame: a folder of frame_0000.png... or a [T, H, W] .npy",
    )
    g.add_argument(
        "--depth-model",
        metavar="PATH_OR_ID",
        help="depth from a transformers model (DPT/MiDaS, Depth Anything, ZoeDepth): a folder "
        "or a hub id in the local Hugging Face cache; views aligned by 4K4DGen eq. 4 (with "
        "--depth too, calibrated to it)",
    )
    g.add_argument(
        "--dino-model",
        metavar="PATH_OR_ID",
        help="DINOv2 (transformers) for the semantic lifting regulariser L_sem of 4K4DGen "
        "eq. 5: a folder or a hub id in the local Hugging Face cache (default: off)",
    )
    g.add_argument(
        "--motion",
        choices=["flow", "sway"],
        help="--mask motion: flow drifts (clouds, water; the default), sway oscillates (foliage)",
    )
    g.add_argument("--frames", type=int, help="number of frames of the loop (default: preset)")
    g.add_argument(
        "--animator",
        default="flow",
        choices=["flow", "svd", "wan"],
        help="how the panorama is animated: flow (weightless, CPU), svd (Stable Video "
        "Diffusion) or wan (Wan 2.x image-to-video, text-conditioned) under the Panoramic "
        "Denoiser; the model ones need --model weights, a GPU in practice",
    )
    g.add_argument(
        "--model",
        metavar="PATH_OR_ID",
        help="--animator svd / wan weights: a diffusers folder or a hub id in the local Hugging "
        "Face cache (defaults: stabilityai/stable-video-diffusion-img2vid-xt, "
        "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers)",
    )
    g.add_argument(
        "--prompt",
        metavar="TEXT",
        help="the global prompt (the scene): what --text-model makes the panorama of, and "
        "what --animator wan conditions every view on (with the prompt of the region it sees "
        "most)",
    )
    g.add_argument(
        "--negative-prompt",
        metavar="TEXT",
        help="what to avoid, for --text-model and --animator wan",
    )
    g.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    add_run_options(
        g,
        None,
        "output folder (default: out/NAME, NAME the panorama's file name or "
        "the prompt's first words)",
    )
    g.set_defaults(func=cmd_generate)

    e = sub.add_parser("export", help="write a scene in the splat formats other tools open")
    e.add_argument("scene", help="a scene folder, generate output, splat file or PLY sequence")
    e.add_argument(
        "--format",
        choices=["ply", "sequence", "compressed-ply", "spz", "splat", "glb", "native"],
        help="sequence (or ply to a folder): frame_NNNN.ply for SuperSplat's flipbook; ply to "
        "a .ply file, compressed-ply, spz, splat, glb: one frame (--frame); native: a scene "
        "folder (default: what --out's suffix says, a folder of PLY frames without one)",
    )
    e.add_argument("--out", required=True)
    e.add_argument("--frame", type=int, default=0, help="the frame of the one-frame formats")
    e.add_argument(
        "--out-axes",
        choices=["y-down", "y-up"],
        help="how the 3DGS formats store it (default y-down, their convention; glb is y-up)",
    )
    add_axes_option(e)
    e.set_defaults(func=cmd_export)

    b = sub.add_parser("batch", help="run a job file of generate jobs, here or on a Ray cluster")
    b.add_argument("jobs", help="job file (JSON): a list of generate jobs (docs/GUIDE.md)")
    b.add_argument("--out", required=True, help="output folder: one subfolder per job")
    b.add_argument(
        "--cluster",
        default="local",
        metavar="local|ray[:ADDRESS]",
        help="local: worker processes here (default); ray: start or join a Ray cluster "
        "(pip install 'pano4d[cluster]'); ray:ADDRESS joins that one",
    )
    b.add_argument(
        "--max-parallel",
        type=int,
        metavar="N",
        help="jobs at a time (local default 1: a job uses every core; Ray: as resources allow)",
    )
    b.add_argument(
        "--resume", action="store_true", help="skip the finished jobs, resume the unfinished"
    )
    b.set_defaults(func=cmd_batch)

    i = sub.add_parser("info", help="print a scene's or splat file's summary")
    i.add_argument("scene")
    add_axes_option(i)
    i.set_defaults(func=cmd_info)
    for plugin in plugins:
        plugin(sub)
    return p


class cancel_on_sigint:
    """First Ctrl-C (or SIGTERM, as a scheduler or ``kill`` sends) sets the cancel token: a
    clean stop, checkpoints kept, temporary files removed; a second one kills."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, token: CancelToken) -> None:
        self.token = token
        self.previous: dict[int, object] = {}

    def __enter__(self) -> None:
        def handler(signum, frame):
            if self.token.cancelled:
                raise KeyboardInterrupt
            self.token.cancel()
            what = "Ctrl-C" if signum == signal.SIGINT else "terminated"
            print(f"\ncancelling ({what}; Ctrl-C again to abort at once)", file=sys.stderr)

        try:
            for sig in self.SIGNALS:
                self.previous[sig] = signal.signal(sig, handler)
        except ValueError:  # not the main thread
            self.previous = {}

    def __exit__(self, *exc: object) -> None:
        for sig, previous in self.previous.items():  # None: set outside Python
            signal.signal(sig, signal.SIG_DFL if previous is None else previous)


def main(argv: Sequence[str] | None = None, plugins: Sequence[Callable] = ()) -> int:
    parser = build_parser(plugins)
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, or a usage error already printed as one line
        return int(e.code or 0)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except Cancelled:
        print("cancelled; run the same command with --resume to continue", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("aborted", file=sys.stderr)
        return 130
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Pano4DError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except MemoryError:
        print("error: out of memory; try --preset preview or a smaller panorama", file=sys.stderr)
        return 1
    except OSError as e:
        message = path_error(e)
        if message is None:
            return _internal_error(e)
        print(f"error: {message}", file=sys.stderr)
        return 2
    except Exception as e:  # an internal bug: keep the traceback out of the user's way
        if _is_gpu_oom(e):
            print(
                "error: the GPU ran out of memory; try --preset preview, fewer --frames, or "
                "--device cpu",
                file=sys.stderr,
            )
            return 1
        return _internal_error(e)


def _internal_error(e: BaseException) -> int:
    """One line naming the error and a log holding its traceback (exit 1)."""
    fd, log = tempfile.mkstemp(prefix="pano4d-error-", suffix=".log")
    with os.fdopen(fd, "w") as f:
        traceback.print_exc(file=f)
    print(f"internal error: {type(e).__name__}: {e} (details in {log})", file=sys.stderr)
    return 1


# file-system refusals that are the path's own (no permission, read-only, disk full); a
# missing file or a file-for-folder mix-up inside the engine stays an internal error (the
# paths the user gives are checked up front, see fsutil.check_writable)
PATH_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT,
               errno.ENAMETOOLONG}  # fmt: skip
DENIED = {errno.EACCES, errno.EPERM, errno.EROFS}


def path_error(e: OSError) -> str | None:
    """A one-line message for a file-system refusal on a named path, or for a full disk
    (whose errors often name no path), else None."""
    if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) and e.filename is None:
        return (
            f"{os.strerror(e.errno)} while writing the output; free some space (or choose "
            "another output folder) and run the same command again (generate: with --resume)"
        )
    if e.errno not in PATH_ERRNOS or e.filename is None:
        return None
    target = f"{e.filename}" + (f" -> {e.filename2}" if e.filename2 is not None else "")
    hint = " (check the path's permissions)" if e.errno in DENIED else ""
    return f"{target}: {e.strerror or os.strerror(e.errno)}{hint}"
