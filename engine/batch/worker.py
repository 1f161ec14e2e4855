"""One batch job, where it runs (a worker process or a Ray task): ``generate`` into
``DIR/NAME/`` with a log, resuming from the job's own checkpoints when it runs again.

``DIR/NAME/.pano4d-batch.json`` records the batch run and the attempts. An attempt of the same
batch run that finds it (its worker died: the executor or Ray ran the job again) resumes
from the checkpoints in ``DIR/NAME/.pano4d/``; so does the first attempt of ``batch
--resume``. ``DIR/NAME/job.log`` says what each attempt did, resumes included.
"""

from __future__ import annotations

import json
import os
import socket
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from ..errors import Cancelled, InputError, Pano4DError, ResumeMismatch
from ..fsutil import atomic_write_json
from ..progress import CancelToken

# report(stage, fraction, message) -> True when the batch asks the job to stop
Reporter = Callable[[str, float, str], bool]
MARKER = ".pano4d-batch.json"
LOG = "job.log"
# report.json figures copied into batch.json
FIGURES = (
    "psnr_native",
    "psnr_native_resolution",
    "psnr_headset",
    "psnr_train",
    "gaussians_per_input_pixel",
    "gaussians_static",
    "gaussians_dynamic_per_frame",
    "frames",
    "bytes_on_disk",
    "static_max_error",
    "loop_discontinuity",
    "peak_rss_mb",
    "timings_s",
    "device",
    "source_size",
)


def execute(spec: dict, out: str, batch_id: str, resume: bool, report: Reporter) -> dict:
    """Run job ``spec`` (:mod:`engine.batch.jobs`) into folder ``out``. Returns ``{"status":
    "done", "figures": ..., "seconds": ...}``, ``{"status": "failed", "error": one line}`` (bad
    input: not worth retrying) or ``{"status": "cancelled"}``. Only a dying process fails
    to return, and the job is then run again."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    attempt, resume = _begin(folder, batch_id, resume)
    result = _run(spec, folder, attempt, resume, report)
    result["attempts"] = attempt
    return result


def _run(spec: dict, folder: Path, attempt: int, resume: bool, report: Reporter) -> dict:
    from .. import pipeline
    from ..config import prepare

    log = _Log(folder / LOG)
    where = f"{socket.gethostname()} pid {os.getpid()}"
    t0 = time.monotonic()
    token = CancelToken()
    callback = _callback(report, token, log)
    try:
        inputs, cfg = prepare(spec)
        done = _checkpointed_stages(folder) if resume else []
        if done:
            log.write(
                f"attempt {attempt} on {where}: resuming from checkpoints ({', '.join(done)})"
            )
        else:
            log.write(f"attempt {attempt} on {where}: starting")
        try:
            result = pipeline.run(
                inputs, cfg, folder, callback=callback, cancel=token, resume=resume
            )
        except ResumeMismatch:
            log.write("the job's settings or inputs changed since its checkpoints: starting over")
            result = pipeline.run(inputs, cfg, folder, callback=callback, cancel=token)
    except Cancelled:
        log.write("cancelled; checkpoints kept (batch --resume continues)")
        return {"status": "cancelled", "seconds": round(time.monotonic() - t0, 2)}
    except (InputError, Pano4DError) as e:
        log.write(f"failed: {e}")
        return {"status": "failed", "error": str(e), "seconds": round(time.monotonic() - t0, 2)}
    except MemoryError:
        log.write("failed: out of memory")
        return {"status": "failed", "error": "out of memory; try the preview preset"}
    except Exception as e:  # a bug: the traceback goes to the job's log, one line to batch.json
        log.write("internal error:\n" + traceback.format_exc())
        return {"status": "failed", "error": f"internal error: {type(e).__name__}: {e} (see {LOG})"}
    seconds = round(time.monotonic() - t0, 2)
    log.write(f"done in {seconds:.1f} s")
    figures = {k: result[k] for k in FIGURES if k in result}
    return {"status": "done", "figures": figures, "seconds": seconds}


def _begin(folder: Path, batch_id: str, resume: bool) -> tuple[int, bool]:
    """Record this attempt; (its number in this batch run, whether to resume)."""
    try:
        marker = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        marker = {}
    again = marker.get("batch_id") == batch_id
    attempt = int(marker.get("attempts", 0)) + 1 if again else 1
    marker = {"batch_id": batch_id, "attempts": attempt, "host": socket.gethostname()}
    atomic_write_json(folder / MARKER, {**marker, "pid": os.getpid()})
    return attempt, resume or again


def _checkpointed_stages(folder: Path) -> list[str]:
    try:
        return list(json.loads((folder / ".pano4d" / "state.json").read_text())["done"])
    except (OSError, ValueError, KeyError):
        return []


class _Log:
    """Appends timestamped lines to the job's log (opened per line: a killed worker loses
    nothing written before)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, line: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(f"{stamp} {line}\n")


def _callback(report: Reporter, token: CancelToken, log: _Log):
    """The pipeline's progress callback: logs each stage's start and its resumes, and passes
    the progress on (at most 4 times a second) to ``report``, whose answer can cancel."""
    state = {"stage": None, "sent": 0.0}

    def callback(stage: str, fraction: float, message: str) -> None:
        now = time.monotonic()
        if stage != state["stage"]:
            state["stage"] = stage
            log.write(f"{stage}: {message}")
        elif "resumed" in message:
            log.write(f"{stage}: {message}")
        if stage != state.get("reported") or now - state["sent"] >= 0.25 or fraction >= 1.0:
            state["sent"], state["reported"] = now, stage
            if report(stage, fraction, message):
                token.cancel()

    return callback
