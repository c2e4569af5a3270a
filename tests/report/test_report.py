"""`saga report` on a finished and on a running study: files, numbers against the optimizer's, the
agreement with `saga study watch`, and the page in headless Chromium."""
from __future__ import annotations

import html
import json
import re
import signal
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from report.tables import COMPLETED, EARLY, INFEASIBLE, NONCONVERGENCE, RUNNING
from saga.v1 import optimizer_pb2 as pb
from tests.report.browser import probe, screenshot
from tests.report.conftest import saga

FIGURES = {"curves_by_epoch", "curves_by_time", "convergence_0_head", "convergence_1_finetune",
           "convergence_2_layer", "surrogate_1_finetune", "surrogate_2_layer", "time"}


def trials_by_id(client, study_id):
    return {t.id: t for t in client.list_trials(study_id, with_measurements=True)}


def assert_valid_png(path):
    assert path.stat().st_size > 0
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        pixels = np.asarray(im.convert("L"), dtype=float)
    assert pixels.std() > 5, f"{path.name} is blank"


def test_a_finished_study_gets_every_figure_as_a_valid_png(finished):
    figures = {p.stem for p in (finished.out / "figures").glob("*.png")}
    assert figures == FIGURES
    for name in FIGURES:
        assert_valid_png(finished.out / "figures" / f"{name}.png")
    assert (finished.out / "index.html").stat().st_size > 0
    # the head phase searches backbone, optimizer and learning rate: no surrogate, and the page says why
    assert "phase head: no surrogate plot: the phase searches 3 parameters" in finished.cli_output


def test_the_trials_table_holds_the_optimizers_numbers(finished, optimizer):
    _, client = optimizer
    stored = trials_by_id(client, finished.study_id)
    rows = finished.json("trials")
    assert [r["id"] for r in rows] == sorted(stored, key=lambda i: stored[i].number)
    seen = set()
    for row in rows:
        t = stored[row["id"]]
        assert row["state"] == pb.TrialState.Name(t.state).removeprefix("TRIAL_")
        assert row["value"] == (t.value if t.has_value else None)
        assert row["worker"] == t.worker_id
        assert row["epochs"] == len([m for m in t.measurements if m.attempt == t.attempt])
        assert row["duration_s"] == pytest.approx(
            t.end_time.ToNanoseconds() / 1e9 - t.start_time.ToNanoseconds() / 1e9, abs=1e-6)
        expected = {pb.TRIAL_SUCCEEDED: COMPLETED, pb.TRIAL_INFEASIBLE: INFEASIBLE}.get(t.state)
        if t.state == pb.TRIAL_STOPPED_EARLY:
            expected = NONCONVERGENCE if t.stop_reason.startswith("nonconvergence") else EARLY
        assert row["stopped"] == expected, (row, t.stop_reason)
        seen.add(row["stopped"])
    # the plateauing curves, the hopeless trials and trial 2 give every ending at least once
    assert {EARLY, NONCONVERGENCE, INFEASIBLE} <= seen
    markdown = (finished.out / "tables" / "trials.md").read_text().splitlines()
    assert len(markdown) == 2 + len(rows)
    # the reason reaches the page: the infeasible trial's error, the rule's words for a stopped one
    infeasible = next(line for line in markdown if "| infeasible |" in line)
    assert "| loss became NaN |" in infeasible
    page = (finished.out / "index.html").read_text()
    assert "<td class='text'>loss became NaN</td>" in page
    stopped = next(t for t in stored.values() if t.stop_reason.startswith("nonconvergence"))
    assert f"<td class='text'>{html.escape(stopped.stop_reason)}</td>" in page


def test_convergence_is_the_running_best_and_the_proposal_steps(finished, optimizer):
    _, client = optimizer
    stored = trials_by_id(client, finished.study_id)
    for phase in finished.json("convergence"):
        values = [stored[i].value if stored[i].has_value else None for i in phase["trial_ids"]]
        assert phase["values"] == values
        best, expected = None, []
        for v in values:
            best = v if v is not None and (best is None or v > best) else best
            expected.append(best)
        assert phase["best_so_far"] == expected
        assert len(phase["distances"]) == len(values) - 1
        assert all(d >= 0 for d in phase["distances"])


def test_the_surrogate_is_fitted_to_the_phases_observations(finished, optimizer):
    _, client = optimizer
    layer = finished.json("surrogate_2_layer")
    assert layer["parameters"] == ["delimiting_layer"]
    trials = [t for t in client.list_trials(finished.study_id) if t.phase == 2 and t.has_value]
    assert sorted(v for _, v in layer["observations"]) == sorted(t.value for t in trials)
    ei = np.asarray(layer["expected_improvement"])
    assert layer["next_point"] == [layer["axes"][0][int(np.argmax(ei))]]
    assert np.all(ei >= 0) and np.all(np.asarray(layer["std"]) > 0)
    finetune = finished.json("surrogate_1_finetune")
    assert finetune["parameters"] == ["finetune_optimizer", "finetune_learning_rate"]
    assert np.asarray(finetune["mean"]).shape == (len(finetune["axes"][0]), len(finetune["axes"][1]))


def test_time_accounting_adds_up_trials_and_the_epochs_the_rules_cut(finished, optimizer):
    _, client = optimizer
    stored = trials_by_id(client, finished.study_id)
    rows = finished.json("time")
    assert [r["phase"] for r in rows] == ["head", "finetune", "layer", "all (separate_steps)"]
    durations = {i: (t.end_time.ToNanoseconds() - t.start_time.ToNanoseconds()) / 1e9 for i, t in stored.items()}
    assert rows[-1]["worker_s"] == pytest.approx(sum(durations.values()))
    # the workers report one GPU per trial; the infeasible trial reported nothing
    assert rows[-1]["gpu_s"] == pytest.approx(sum(d for i, d in durations.items() if stored[i].metrics.get("gpus")))
    cut = 0
    for t in stored.values():
        if t.state in (pb.TRIAL_SUCCEEDED, pb.TRIAL_STOPPED_EARLY):
            steps = {s["name"]: s["max_epochs"] for s in json.loads(t.task_json)["steps"]}
            cut += sum(steps.values()) - len(t.measurements)
    assert rows[-1]["saved_epochs_early_stopping"] + rows[-1]["saved_epochs_nonconvergence"] == cut
    assert rows[-1]["saved_epochs_nonconvergence"] > 0 and rows[-1]["saved_epochs_early_stopping"] > 0
    assert sum(r["trials"] for r in rows[:-1]) == rows[-1]["trials"] == len(stored)


WATCH = re.compile(r"\] (\d+)/(\d+) phase (\w+) (\d+)/(\d+), running (\d+), best (?:([\d.]+) \(([\w-]+)\)|-)")


def watch_line(target: str, study_id: str) -> re.Match:
    """The first progress line `saga study watch` prints (the study's snapshot)."""
    p = subprocess.Popen([sys.executable, "-m", "saga.cli.main", "study", "--optimizer", target, "watch",
                          study_id], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
    finally:
        p.send_signal(signal.SIGINT)
        p.wait(timeout=30)
    m = WATCH.search(line)
    assert m, line
    return m


@pytest.mark.parametrize("which", ["finished", "running"])
def test_watch_and_the_report_agree(which, request, optimizer):
    reported = request.getfixturevalue(which)
    target, _ = optimizer
    m = watch_line(target, reported.study_id)
    summary = reported.json("summary")
    phase = next(p for p in summary["phases"] if p["name"] == summary["current_phase"])
    assert (int(m[1]), int(m[2])) == (summary["trials_finished"], summary["trials_total"])
    assert (m[3], int(m[4]), int(m[5])) == (phase["name"], phase["finished"], phase["budget"])
    assert int(m[6]) == summary["running"]
    assert m[7] == f"{summary['best']['value']:.4f}" and m[8] == summary["best"]["trial_id"]


def test_a_running_study_reports_what_exists_so_far(running, optimizer):
    _, client = optimizer
    summary = running.json("summary")
    assert summary["state"] == "ACTIVE" and summary["running"] == 1
    rows = running.json("trials")
    assert len(rows) == len(client.list_trials(running.study_id))
    live = [r for r in rows if r["stopped"] == RUNNING]
    assert len(live) == 1 and live[0]["epochs"] == 2 and live[0]["duration_s"] > 0
    html = (running.out / "index.html").read_text()
    assert "still running" in html
    for png in (running.out / "figures").glob("*.png"):
        assert_valid_png(png)
    assert {"curves_by_epoch", "convergence_0_head"} <= {p.stem for p in (running.out / "figures").glob("*.png")}
    assert "phase finetune: no trials yet" in running.cli_output


@pytest.mark.parametrize("which", ["finished", "running"])
def test_the_page_opens_in_headless_chromium(which, request, tmp_path):
    reported = request.getfixturevalue(which)
    seen = probe(reported.out / "index.html")
    figures = len(list((reported.out / "figures").glob("*.png")))
    assert seen["errors"] == [] and seen["broken"] == []
    assert seen["images"] == figures and seen["tables"] >= 3
    assert seen["title"].startswith("Saga report")
    shot = screenshot(reported.out / "index.html", tmp_path / "shot.png")
    assert_valid_png(shot)


def test_unknown_study_and_bad_output_folder_are_refused(optimizer, tmp_path):
    target, _ = optimizer
    done = saga("report", "st-nope", "--out", str(tmp_path / "r"), "--optimizer", target)
    assert done.returncode == 2 and "st-nope" in done.stderr and not (tmp_path / "r").exists()
    (tmp_path / "file").write_text("x")
    done = saga("report", "st-nope", "--out", str(tmp_path / "file"), "--optimizer", target)
    assert done.returncode == 2 and "not a folder" in done.stderr


def test_writing_again_into_the_same_folder_leaves_no_file_of_the_earlier_report(running, optimizer):
    target, _ = optimizer
    stale = running.out / "figures" / "confusion_test.png"
    stale.write_bytes(b"from an earlier report")
    done = saga("report", running.study_id, "--out", str(running.out), "--optimizer", target)
    assert done.returncode == 0, done.stderr
    assert not stale.exists() and (running.out / "figures" / "curves_by_epoch.png").exists()
