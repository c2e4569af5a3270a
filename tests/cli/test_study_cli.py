"""`saga study list`, `trials` and `watch` against a real optimizer over localhost gRPC."""
from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys

from optimizer_svc.client import OptimizerClient
from optimizer_svc.events import EventBus
from saga.cli.watch import Estimate, Watcher, duration_text
from saga.v1 import optimizer_pb2 as pb
from tests.optimizer.cheap import CheapWorker
from tests.optimizer.conftest import service, small_spec  # noqa: F401  (fixture)

SAGA = [sys.executable, "-m", "saga.cli.main"]


def saga(target: str, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run(SAGA + ["study", "--optimizer", target, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done


def test_watch_follows_every_trial_and_ends_with_the_best_parameters_and_what_to_run_next(service):
    target, core = service
    study = core.create_study(small_spec("shared", budget={"trials_per_phase": 2, "parallel_trials": 1}))
    watch = subprocess.Popen(SAGA + ["study", "--optimizer", target, "watch", study.id], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    first = watch.stdout.readline()  # the snapshot: the worker starts only once the watch is following
    assert "0/4 phase search 0/2, running 0, best -" in first
    worker = CheapWorker(target, study.id, "cli-worker")
    worker.start()
    out, err = watch.communicate(timeout=120)
    worker.join(30)
    assert watch.returncode == 0, err
    assert "trial 0 (" in out and "started on cli-worker: backbone=" in out
    assert "  trial 0 head epoch 1/3: val_accuracy" in out, out  # per-epoch progress
    assert "trial 0 succeeded: val_accuracy 0." in out or "trial 0 stopped_early: val_accuracy" in out
    assert "phase 1 'layer' started: 2 trials" in out
    assert "left" in out                                          # an estimate once a trial has ended
    best = core.best_trial(study.id)
    summary = out[out.index(f"study {study.id} completed"):]
    assert f"best val_accuracy {best.value:.4f}: trial {best.number} ({best.id})" in summary
    for name, value in best.parameters.items():
        assert name in summary and (f"{value:.4g}" if isinstance(value, float) else str(value)) in summary
    assert f"saga report {study.id}" in summary and f"saga export {study.id}" in summary
    assert f"--optimizer {target}" in summary


def test_a_watch_that_misses_events_still_closes_every_trial_it_showed_and_ends_on_the_full_bar(service):
    target, core = service
    core.events = EventBus(max_queue=1)  # a slow reader: the server keeps only each stream's newest event
    study = core.create_study(small_spec("shared", budget={"trials_per_phase": 4, "parallel_trials": 2}))
    client = OptimizerClient(target)
    out = io.StringIO()
    workers = [CheapWorker(target, study.id, f"w{i}") for i in range(2)]
    for w in workers:
        w.start()
    final = Watcher(client, study.id, out, tty=False, optimizer=target).run()
    for w in workers:
        w.join(60)
    client.close()
    text = out.getvalue()
    assert final.state == pb.STUDY_COMPLETED
    started = set(re.findall(r"^trial (\d+) \(st-\S+\) started", text, re.M))
    ended = set(re.findall(r"^trial (\d+) (?:succeeded|stopped_early|failed|infeasible)", text, re.M))
    assert started <= ended, text
    assert text.splitlines()[-1].startswith("[" + "#" * 30 + "] 8/8 phase layer 4/4"), text


def test_list_and_trials_as_a_table_csv_and_json(service):
    target, core = service
    done = core.create_study(small_spec("joint", name="finished one", budget={"trials_per_phase": 3}))
    worker = CheapWorker(target, done.id, "w")
    worker.run()
    fresh = core.create_study(small_spec(name="fresh one"))
    table = saga(target, "list").stdout.splitlines()
    assert table[0].split() == ["ID", "NAME", "STATE", "STRATEGY", "TRIALS", "BEST", "OBJECTIVE", "CREATED"]
    best = core.best_trial(done.id)
    row = next(line for line in table if line.startswith(done.id))
    assert "completed" in row and "3/3" in row and f"{best.value:.4f}" in row
    listed = json.loads(saga(target, "list", "--json").stdout)
    assert [s["id"] for s in listed] == [fresh.id, done.id]  # newest first
    assert listed[1]["best_value"] == best.value and listed[1]["best_trial_id"] == best.id
    assert listed[0]["best_value"] is None and listed[0]["created"].endswith("Z")

    trials = core.list_trials(done.id)
    rows = list(csv.DictReader(io.StringIO(saga(target, "trials", done.id, "--csv").stdout)))
    assert [r["id"] for r in rows] == [t.id for t in trials]
    for r, t in zip(rows, trials):
        assert float(r["value"]) == t.value and r["state"] == t.state
        assert r["backbone"] == t.parameters["backbone"] and float(r["learning_rate"]) == t.parameters["learning_rate"]
    text = saga(target, "trials", done.id).stdout.splitlines()
    assert text[0].split()[:5] == ["#", "ID", "PHASE", "STATE", "VALUE"] and len(text) == 1 + len(trials)
    assert len(json.loads(saga(target, "trials", done.id, "--json").stdout)) == len(trials)
    assert saga(target, "trials", fresh.id).stdout.strip() == "no trials yet"


def test_the_time_left_is_the_mean_trial_time_over_the_trials_that_run_at_once():
    estimate = Estimate()
    assert estimate.left(10, 2) is None  # nothing ended yet: no guess
    for start, end in ((1000, 1060), (1100, 1220)):
        t = pb.Trial()
        t.start_time.seconds, t.end_time.seconds = start, end
        estimate.add(t)
    assert estimate.left(4, 2) == 90 * 2 and estimate.left(5, 2) == 90 * 3 and estimate.left(0, 2) is None
    assert [duration_text(s) for s in (5, 125, 7300)] == ["5s", "2m05s", "2h01m"]
