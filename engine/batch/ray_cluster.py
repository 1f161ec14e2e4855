"""Jobs on a Ray cluster (``--cluster ray[:ADDRESS]``; the optional extra ``pano4d[cluster]``).

Each job is one Ray task asking for what its preset needs (:data:`engine.presets.RESOURCES`:
a GPU for the CUDA preset, cores and memory from the measured peak), capped at what the
cluster has. Ray runs a task again when its worker dies (``max_retries``); the job then
resumes from its checkpoints (:mod:`engine.batch.worker`). A job that fails on bad input
returns its reason and is not run again.

Outputs go straight to ``DIR/NAME/`` when the worker sees ``DIR`` (a shared path: the driver
leaves a token there that the task looks for). Otherwise the task works in a folder of the
worker's own (kept between attempts on that node) and sends the finished folder back to the
driver as one archive. The inputs must be readable from every node under the same paths.

Progress travels through a small actor: tasks report to it about four times a second, the
driver reads it, and Ctrl-C sets its stop flag, which the tasks see at their next report.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import tarfile
import tempfile
from pathlib import Path

from ..errors import InputError, first_line
from ..fsutil import atomic_dir
from .jobs import Job

TOKEN = ".pano4d-batch-token"


def _ray():
    try:
        import ray
    except ImportError:
        raise InputError(
            "--cluster ray needs Ray: pip install 'pano4d[cluster]' (or run without --cluster)"
        ) from None
    return ray


class _Board:
    """Ray actor: the latest progress of each job, and the batch's stop flag."""

    def __init__(self) -> None:
        self.progress: dict[str, tuple] = {}
        self.stopped = False

    def report(self, name: str, stage: str, fraction: float, message: str) -> bool:
        self.progress[name] = (stage, fraction, message)
        return self.stopped

    def snapshot(self) -> dict[str, tuple]:
        out, self.progress = self.progress, {}
        return out

    def stop(self) -> None:
        self.stopped = True


def _task(spec: dict, out: str, batch_id: str, resume: bool, board, shared: bool | None) -> dict:
    """The body of a job's Ray task (runs on a worker)."""
    import ray

    from .worker import execute

    name = spec["name"]
    target = Path(out)
    if shared is None:
        try:
            shared = (target.parent / TOKEN).read_text() == batch_id
        except OSError:
            shared = False
    folder = target if shared else Path(tempfile.gettempdir()) / "pano4d-batch" / batch_id / name

    def report(stage: str, fraction: float, message: str) -> bool:
        return ray.get(board.report.remote(name, stage, fraction, message))

    result = execute(spec, str(folder), batch_id, resume, report)
    if not shared:  # the driver has no view of this folder: send it back
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:  # a done run has no checkpoints
            for p in sorted(folder.iterdir()):
                tar.add(p, arcname=p.name)
        if result["status"] == "done":
            shutil.rmtree(folder, ignore_errors=True)
        result["archive"] = buf.getvalue()
    return result


def check_reachable(address: str, what: str, timeout_s: float = 5.0) -> None:
    """InputError (one line, starting with ``what``) unless something accepts a connection
    at a HOST:PORT cluster address; ray.init would otherwise wait for minutes. "auto" and
    "local" pass."""
    if address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise InputError(f"{what}: expected HOST:PORT (e.g. 10.0.0.5:6379)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise InputError(
            f"{what}: nothing answers at {host}:{port} ({e.strerror or e}); "
            "is `ray start --head` running there?"
        ) from None


class RayExecutor:
    """Jobs as Ray tasks (see the module's docstring)."""

    def __init__(
        self,
        out: Path,
        batch_id: str,
        address: str | None = None,
        max_parallel: int | None = None,
        max_attempts: int = 3,
        shared: bool | None = None,
    ) -> None:
        ray = self.ray = _ray()
        if not ray.is_initialized():  # start a local cluster, or join ADDRESS / RAY_ADDRESS
            if address:
                check_reachable(address, f"--cluster ray:{address}")
            elif os.environ.get("RAY_ADDRESS"):
                env = os.environ["RAY_ADDRESS"]
                check_reachable(env, f"--cluster ray (RAY_ADDRESS={env})")
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=False)
            except (ValueError, ConnectionError) as e:
                where = f"ray:{address}" if address else "ray"
                raise InputError(f"--cluster {where}: {first_line(e)}") from None
        self.out, self.shared = Path(out), shared
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / TOKEN).write_text(batch_id)
        self.board = ray.remote(_Board).options(num_cpus=0).remote()
        self.remote = ray.remote(_task)
        self.max_retries = max(0, max_attempts - 1)
        self.cluster = ray.cluster_resources()
        self.slots = max_parallel or 10**6  # Ray schedules by resources
        self.refs: dict[object, str] = {}
        cpus, gpus = int(self.cluster.get("CPU", 0)), int(self.cluster.get("GPU", 0))
        self.describe = f"Ray cluster, {cpus} CPU(s), {gpus} GPU(s)"

    def resources(self, job: Job) -> dict:
        """The task's resource request: the preset's needs, capped at the cluster's."""
        from ..presets import NEEDS_CUDA, RESOURCES

        need = RESOURCES.get(job.preset, RESOURCES["standard"])
        gpus = 1 if job.preset in NEEDS_CUDA or job.spec.get("device") == "cuda" else 0
        if gpus and self.cluster.get("GPU", 0) < 1:
            raise InputError(f"job '{job.name}' needs a GPU, and the Ray cluster has none")
        memory = min(need["memory_gb"] * 1e9, 0.8 * self.cluster.get("memory", 1e12))
        return {
            "num_cpus": min(need["cpus"], max(1.0, self.cluster.get("CPU", 1))),
            "num_gpus": gpus,
            "memory": int(memory),
        }

    def submit(self, job: Job, folder: Path, batch_id: str, resume: bool) -> None:
        opts = {**self.resources(job), "max_retries": self.max_retries, "retry_exceptions": False}
        task = self.remote.options(name=f"pano4d-job-{job.name}", **opts)
        ref = task.remote(job.spec, str(folder), batch_id, resume, self.board, self.shared)
        self.refs[ref] = job.name

    def poll(self, timeout: float) -> list[tuple]:
        ray = self.ray
        out: list[tuple] = []
        if self.refs:
            ready, _ = ray.wait(list(self.refs), num_returns=len(self.refs), timeout=timeout)
        else:
            ready = []
        for name, (stage, fraction, message) in ray.get(self.board.snapshot.remote()).items():
            out.append(("progress", name, stage, fraction, message))
        for ref in ready:
            name = self.refs.pop(ref)
            try:
                result = ray.get(ref)
            except ray.exceptions.RayError as e:
                first = first_line(e)
                out.append(("lost", name, f"{type(e).__name__}: {first}"))
                continue
            archive = result.pop("archive", None)
            if archive is not None:
                _unpack(archive, self.out / name)
            out.append(("result", name, result))
        return out

    def cancel(self) -> None:
        self.board.stop.remote()

    def close(self) -> None:
        if self.refs:  # cancelled: the tasks stop at their next report; then force
            _, left = self.ray.wait(list(self.refs), num_returns=len(self.refs), timeout=60)
            for ref in left:
                self.ray.cancel(ref, force=True)
        (self.out / TOKEN).unlink(missing_ok=True)


def _unpack(archive: bytes, folder: Path) -> None:
    """A job folder sent back by a worker, put in place whole."""
    with atomic_dir(folder) as tmp, tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(tmp, filter="data")
