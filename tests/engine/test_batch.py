"""main.py batch: the job file checked up front, jobs here and on a local Ray cluster,
a worker killed mid-job resumes from its checkpoints, --resume after a killed driver."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from engine import cli
from engine.batch import BatchConfig, load_jobs, run_batch
from engine.errors import InputError
from tests.conftest import ROOT, textured_equirect


def wait_for(predicate, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("batch")
    Image.fromarray(textured_equirect(128, 256, seed=3)).save(d / "pano.png")
    Image.fromarray(textured_equirect(256, 512, seed=5)).save(d / "big.png")
    for name, (h, w) in (("mask", (128, 256)), ("big_mask", (256, 512))):
        m = np.zeros((h, w), np.uint8)
        m[h // 10 : h // 2, w // 10 : 9 * w // 10] = 255
        Image.fromarray(m).save(d / f"{name}.png")
    (d / "broken.png").write_bytes(b"\x89PNG not really")
    (d / "r.json").write_text("{}")  # a region file's path (the entries using it fail first)
    return d


def job_file(folder, jobs, name="jobs.json", **defaults):
    doc = {"format": "pano4d-batch", "version": 1, "defaults": {"preset": "preview", **defaults}}
    path = folder / name
    path.write_text(json.dumps({**doc, "jobs": jobs}))
    return path


THREE = [
    {"name": "a", "panorama": "pano.png", "mask": "mask.png"},
    {"name": "bad", "panorama": "broken.png", "mask": "mask.png"},
    {"name": "c", "panorama": "pano.png", "mask": "mask.png", "direction": 180},
]


def test_a_job_takes_exactly_the_options_of_generate():
    from engine.batch.jobs import FIELDS
    from engine.config import OPTIONS

    assert set(FIELDS) == {"name", *OPTIONS}
    gen = next(a for a in cli.build_parser()._subparsers._actions if a.dest == "command")
    dests = {a.dest for a in gen.choices["generate"]._actions} - {"help", "out", "resume"}
    assert dests == set(OPTIONS)


@pytest.mark.parametrize(
    "entry, reason",
    [
        ({"panorama": "missing.png"}, "job 1 (missing.png): panorama missing.png does not exist"),
        (
            {"panorama": "pano.png", "frames": "8"},
            "job 1 (pano.png): 'frames' must be a whole number, got \"8\"",
        ),
        ({"panorama": "pano.png", "mask": "mask.png", "preset": "ultra"}, "unknown preset 'ultra'"),
        ({"panorama": "pano.png", "sped": 3}, "job 1 (pano.png): unknown key(s) sped"),
        (
            {"name": "a", "panorama": "pano.png", "mask": "mask.png"},
            "job 1 ('a'): the name is used by job 0 too",
        ),
        ({"name": "../x", "panorama": "pano.png", "mask": "mask.png"}, "cannot name a folder"),
        ({"panorama": "pano.png", "mask": "mask.png", "speed": -3}, "--speed must be a finite"),
        ({"panorama": "pano.png", "mask": "mask.png", "speed": float("nan")}, "--speed must be"),
        ({"panorama": "pano.png"}, "nothing to animate"),
        ({"panorama": "pano.png", "mask": "mask.png", "regions": "r.json"}, "not several"),
        ({"panorama": "pano.png", "regions": "r.json", "direction": 90}, "sets how the --mask"),
        ({"prompt": "a lake"}, "needs a 'panorama'"),
        ({"panorama": "pano.png", "mask": "mask.png", "seg_model": "clipseg"}, "--seg-model finds"),
        (
            {"panorama": "pano.png", "mask": "mask.png", "animator": "svd", "model": "nowhere"},
            "job 1",
        ),
    ],
)
def test_a_bad_entry_is_named_before_any_job_starts(inputs, tmp_path, capsys, entry, reason):
    path = job_file(inputs, [{"name": "a", "panorama": "pano.png", "mask": "mask.png"}, entry])
    with pytest.raises(InputError, match="^job 1") as e:
        load_jobs(path)
    assert reason in str(e.value)
    code = cli.main(["batch", str(path), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and err.startswith("error: job 1")
    assert not (tmp_path / "out").exists()


def test_mask_and_text_defaults_apply_to_the_jobs_they_fit(inputs):
    """A default --mask motion goes to the jobs with a mask, not to a regions job (which it
    would make refused); a job's own misplaced key is still refused."""
    jobs = [
        {"name": "a", "panorama": "pano.png", "mask": "mask.png"},
        {"name": "b", "panorama": "pano.png", "regions": "r.json"},
    ]
    a, b = load_jobs(job_file(inputs, jobs, "fit.json", speed=3, seed=4))
    assert a.spec["speed"] == 3 and "speed" not in b.spec and "seed" not in a.spec
    jobs[1]["speed"] = 3
    with pytest.raises(InputError, match="job 1 \\('b'\\): --speed sets how the --mask"):
        load_jobs(job_file(inputs, jobs, "own.json"))


def test_an_unknown_default_is_blamed_on_the_defaults(inputs):
    path = job_file(inputs, THREE[:1], "defaults.json", bogus=1)
    with pytest.raises(InputError, match="'defaults': unknown key"):
        load_jobs(path)


def test_a_job_without_a_name_is_named_after_its_panorama_as_a_folder_can_be(inputs):
    import shutil

    shutil.copy(inputs / "pano.png", inputs / "my park (2).png")
    path = job_file(inputs, [{"panorama": "my park (2).png", "mask": "mask.png"}], "named.json")
    assert [j.name for j in load_jobs(path)] == ["my-park-2"]


def test_a_ray_address_where_nothing_answers_is_one_line_at_once(inputs, tmp_path, capsys):
    import socket

    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = job_file(inputs, THREE[:1])
    out = tmp_path / "out"
    code = cli.main(["batch", str(path), "--out", str(out), "--cluster", f"ray:127.0.0.1:{port}"])
    err = capsys.readouterr().err
    assert code == 2 and f"nothing answers at 127.0.0.1:{port}" in err, err
    assert len(err.strip().splitlines()) == 1 and not out.exists()  # (ray.init: minutes)


def test_an_unknown_cluster_is_one_line_and_writes_nothing(inputs, tmp_path, capsys):
    path = job_file(inputs, THREE[:1])
    code = cli.main(["batch", str(path), "--out", str(tmp_path / "out"), "--cluster", "slurm"])
    err = capsys.readouterr().err
    assert code == 2 and err == "error: --cluster must be local, ray or ray:ADDRESS, got 'slurm'\n"
    assert not (tmp_path / "out").exists()


def test_local_batch_runs_each_job_and_records_the_bad_one(inputs, tmp_path, capsys):
    path = job_file(inputs, THREE, frames=3)
    code = cli.main(["batch", str(path), "--out", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert code == 1 and "1 job(s) failed" in captured.err
    doc = json.loads((tmp_path / "out" / "batch.json").read_text())
    status = {j["name"]: j for j in doc["jobs"]}
    assert [status[n]["status"] for n in ("a", "bad", "c")] == ["done", "failed", "done"]
    assert "not a valid PNG" in status["bad"]["error"] and status["bad"]["attempts"] == 1
    assert status["a"]["figures"]["static_max_error"] == 0
    assert doc["summary"]["done"] == 2 and doc["summary"]["failed"] == 1
    assert doc["finished"] is not None and doc["summary"]["scenes_per_hour"] > 0
    for name in ("a", "c"):
        assert (tmp_path / "out" / name / "scene" / "manifest.json").is_file()
        assert (tmp_path / "out" / name / "report.json").is_file()
    assert not (tmp_path / "out" / "bad" / "scene").exists()
    assert "[2/3] bad: failed: " in captured.err  # one line per job, then the overall bar
    assert "3/3" in captured.err or "2/3 done" in captured.err


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             object_store_memory=100 * 1024**2)  # fmt: skip
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_ray_cluster_runs_three_jobs_one_bad_and_results_come_back(ray_cluster, inputs, tmp_path):
    jobs = load_jobs(job_file(inputs, THREE, frames=3))
    state = run_batch(jobs, tmp_path / "out", BatchConfig(cluster="ray", shared=False))
    got = {n: j["status"] for n, j in state.jobs.items()}
    assert got == {"a": "done", "bad": "failed", "c": "done"}
    assert "not a valid PNG" in state.jobs["bad"]["error"]
    # no shared path: the finished folders came back to the driver as archives
    for name in ("a", "c"):
        report = json.loads((tmp_path / "out" / name / "report.json").read_text())
        assert report["static_max_error"] == 0
        assert not (tmp_path / "out" / name / ".pano4d").exists()
    assert (
        "Ray cluster, 2 CPU(s)"
        in json.loads((tmp_path / "out" / "batch.json").read_text())["cluster"]
    )


def _stage_done(folder, stage):
    try:
        return stage in json.loads((folder / ".pano4d" / "state.json").read_text())["done"]
    except (OSError, ValueError):
        return False


@pytest.mark.slow
def test_a_ray_worker_killed_mid_job_is_retried_and_resumes(ray_cluster, inputs, tmp_path):
    """The worker is SIGKILLed once its job has checkpointed the animation; Ray runs the
    task again, which resumes from the checkpoints (the job's log says so)."""
    import threading

    jobs = load_jobs(
        job_file(inputs, [{"name": "big", "panorama": "big.png", "mask": "big_mask.png"}])
    )
    folder = tmp_path / "out" / "big"
    killed = []

    def killer():
        if wait_for(lambda: _stage_done(folder, "depth"), 120):
            pid = json.loads((folder / ".pano4d-batch.json").read_text())["pid"]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    t = threading.Thread(target=killer)
    t.start()
    state = run_batch(jobs, tmp_path / "out", BatchConfig(cluster="ray"))
    t.join()
    assert killed, "the job finished before it could be killed"
    job = state.jobs["big"]
    assert job["status"] == "done" and job["attempts"] == 2, job
    log = (folder / "job.log").read_text()
    assert "attempt 1" in log and "attempt 2" in log
    assert "attempt 2 on" in log and "resuming from checkpoints (animate, depth)" in log
    assert "animate: resumed from checkpoint" in log
    assert (folder / "scene" / "manifest.json").is_file()


@pytest.mark.slow
def test_resume_after_a_killed_driver_finishes_the_rest(inputs, tmp_path):
    path = job_file(
        inputs,
        [
            {"name": "first", "panorama": "pano.png", "mask": "mask.png", "frames": 3},
            {"name": "second", "panorama": "big.png", "mask": "big_mask.png"},
        ],
    )
    out = tmp_path / "out"
    cmd = [sys.executable, str(ROOT / "main.py"), "batch", str(path), "--out", str(out)]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        assert wait_for(lambda: _stage_done(out / "second", "depth"), 180)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and its workers, as a crash would
        proc.wait()
    doc = json.loads((out / "batch.json").read_text())
    assert [j["status"] for j in doc["jobs"]] == ["done", "running"]
    first_log = (out / "first" / "job.log").read_text()

    done = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    doc = json.loads((out / "batch.json").read_text())
    assert [j["status"] for j in doc["jobs"]] == ["done", "done"]
    assert doc["summary"]["skipped"] == 1
    assert (out / "first" / "job.log").read_text() == first_log  # not run again
    log = (out / "second" / "job.log").read_text()
    assert "resuming from checkpoints (animate, depth)" in log
    assert (out / "second" / "scene" / "manifest.json").is_file()
