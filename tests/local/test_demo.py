"""``saga demo``: the reduced (--quick) configuration end to end as a user runs it, and the ways
it must fail loudly instead of hanging (a worker dies mid-study, a study that never ends, a
folder it must not clear)."""
from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
from pathlib import Path

import cv2
import pytest

from optimizer_svc.client import OptimizerClient
from optimizer_svc.core import OptimizerCore
from optimizer_svc.server import make_server
from saga.local.demo import STEPS
from saga.local.demo_config import DemoConfig
from saga.local.processes import ProcessError, Supervisor
from saga.local.study_progress import StudyError, follow_study
from saga.v1 import optimizer_pb2 as pb
from tests.optimizer.cheap import CheapWorker

from .helpers import read_until, saga_process


class SlowWorker(CheapWorker):
    """Reports an epoch every 3 s: always progressing, never fast."""

    def __init__(self, *args, **kw):
        super().__init__(*args, epochs=2, **kw)
        real = self.client.report_progress

        def slow_report(*a, **k):
            time.sleep(3)
            return real(*a, **k)
        self.client.report_progress = slow_report


def _processes_mentioning(text: str) -> list[str]:
    """Live processes whose command line contains ``text`` (every service names DIR/services in it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmd and _state(entry) != "Z":
            found.append(f"{entry.name}: {cmd}")
    return found


def _state(entry: Path) -> str:
    try:
        stat = (entry / "stat").read_text()
    except OSError:
        return "gone"
    return stat[stat.rindex(")") + 2]


def test_quick_demo_runs_end_to_end(tmp_path: Path) -> None:
    out_dir = tmp_path / "demo"
    proc = saga_process("demo", "--quick", "--dir", str(out_dir))
    try:
        stdout, stderr = proc.communicate(timeout=420)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, f"stdout:\n{stdout[-4000:]}\nstderr:\n{stderr[-4000:]}"
    for n in range(1, STEPS + 1):
        assert f"[{n}/{STEPS}]" in stdout
    assert re.search(r"trial \S+ -> trainer-1", stdout), "no study progress from the watch stream"
    assert re.search(r"test \(held out\) accuracy \d\.\d{3}", stdout)
    assert re.search(r"latency p50 \d+\.\d ms, p95 \d+\.\d ms; \d+\.\d fps", stdout)

    summary = json.loads((out_dir / "summary.json").read_text())
    config = DemoConfig.quick()
    assert summary["dataset"]["classes"] == ["polyp", "ulcer", "vessels"]
    assert summary["weights"]["uri"].endswith("weights/mobilenetv2-synthetic.keras")
    assert Path(summary["weights"]["uri"]).is_file()
    study = summary["study"]
    assert study["parameters"]["backbone"] == "MobileNetV2"
    assert {"val_accuracy", "test_accuracy"} <= set(study["metrics"])
    assert Path(study["artifacts"]["metrics"]).is_file()          # the trial's evaluation
    report = Path(summary["report"])
    assert report == out_dir.resolve() / "report" / "index.html" and report.stat().st_size > 0
    assert (report.parent / "figures" / "curves_by_epoch.png").stat().st_size > 0
    model_dir = Path(summary["model"]["uri"])
    assert (model_dir / "saved_model.pb").is_file() and summary["model"]["version"] == 1
    video = summary["video"]
    frames = config.classes * config.video_frames_per_class
    assert video["frames"] == frames and video["failures"] == 0 and video["p50_ms"] > 0
    capture = cv2.VideoCapture(video["annotated_video"])
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == frames
    capture.release()
    assert not _processes_mentioning(str(out_dir / "services")), "services outlived the demo"


def test_sigterm_mid_study_stops_every_service(tmp_path: Path) -> None:
    out_dir = tmp_path / "demo"
    proc = saga_process("demo", "--quick", "--dir", str(out_dir))
    try:
        read_until(proc, rf"\[4/{STEPS}\] Study", timeout_s=300)
        assert len(_processes_mentioning(str(out_dir / "services"))) >= 3, "no services during the study"
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130 and "stopped (SIGTERM)" in stderr
    assert not _processes_mentioning(str(out_dir / "services")), "services outlived the demo"


def test_refuses_to_clear_a_folder_it_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    proc = saga_process("demo", "--quick", "--dir", str(tmp_path))
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert "FAILED" in stderr and "not empty" in stderr
    assert (tmp_path / "precious.txt").read_text() == "keep me"


@pytest.fixture
def optimizer(tmp_path: Path):
    core = OptimizerCore(str(tmp_path / "opt.db"))
    server, port = make_server(core, "127.0.0.1:0")
    server.start()
    with OptimizerClient(f"127.0.0.1:{port}") as client:
        study = client.create_study(DemoConfig.quick().study_spec(str(tmp_path / "data"), "imagenet"))
        yield client, study.id
    server.stop(grace=None).wait()
    core.close()


def test_a_worker_dying_mid_study_fails_the_wait_with_its_log(optimizer, tmp_path: Path) -> None:
    client, study_id = optimizer
    with Supervisor(tmp_path / "logs") as sup:
        sup.start("trainer-1", [sys.executable, "-c", "print('out of memory in trainer', flush=True)\n"
                                                      "import time; time.sleep(1); raise SystemExit(137)"])
        with pytest.raises(ProcessError, match=r"(?s)trainer-1 .*exited with code 137.*out of memory"):
            follow_study(client, study_id, sup, stall_timeout_s=60, say=lambda _: None)


def test_a_study_without_progress_fails_the_wait(optimizer, tmp_path: Path) -> None:
    client, study_id = optimizer
    lines: list[str] = []
    with Supervisor(tmp_path / "logs") as sup, pytest.raises(StudyError, match="made no progress for 1s"):
        follow_study(client, study_id, sup, stall_timeout_s=1, say=lines.append)


def test_a_slow_study_that_progresses_is_followed_to_its_end(optimizer, tmp_path: Path) -> None:
    """Each trial takes longer than the stall limit allows for no progress at all, and the whole
    study far longer: it must still be followed to the end (no wall-clock limit)."""
    import optimizer_svc.gpyopt_backend  # noqa: F401 - the first proposal's import (seconds) is no progress
    client, study_id = optimizer
    worker = SlowWorker(client.target, study_id, "slow")
    worker.start()
    started = time.monotonic()
    with Supervisor(tmp_path / "logs") as sup:
        study = follow_study(client, study_id, sup, stall_timeout_s=8, say=lambda _: None)
    assert time.monotonic() - started > 8
    worker.join(timeout=30)
    assert study.state == pb.STUDY_COMPLETED
