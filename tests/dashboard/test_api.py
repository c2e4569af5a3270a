"""The dashboard's JSON API against the real optimizer: the numbers are the optimizer's and the
report's, bad requests are 4xx with a message, actions only when enabled."""
from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from dashboard.vendor import VENDOR, record
from report.source import read_study
from report.tables import trials_table
from tests.dashboard.conftest import start_dashboard, stop


def get(url: str, timeout: float = 120) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def post(url: str, body: dict | bytes | None = None) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body or {}).encode()
    req = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_the_study_view_holds_the_reports_numbers(stack):
    status, overview = get(f"{stack.url}api/studies/{stack.finished}")
    assert status == 200
    expected = json.loads(json.dumps(trials_table(read_study(stack.client, stack.finished)), default=str))
    for row in expected:
        row.pop("duration_s")
    got = [{k: v for k, v in row.items() if k != "duration_s"} for row in overview["trials"]]
    assert got == expected
    assert [p["name"] for p in overview["phases"]] == ["head", "finetune", "layer"]
    best = stack.client.best_trial(stack.finished)
    assert overview["summary"]["best"]["trial_id"] == best.id and overview["summary"]["best"]["value"] == best.value
    assert len(overview["curves"]) == len([r for r in expected if r["epochs"]])


def test_insight_ranks_parameters_and_reads_the_best_trials_evaluation(stack):
    status, insight = get(f"{stack.url}api/studies/{stack.finished}/insight")
    assert status == 200
    head, finetune, layer = insight["phases"]
    # three parameters in the head phase: importance, but no surrogate (drawn for one or two)
    assert sorted(head["importance"]["parameters"]) == ["backbone", "head_learning_rate", "head_optimizer"]
    assert sum(head["importance"]["importances"]) == pytest.approx(1.0)
    assert head["surrogate"] is None and "3 parameters" in head["surrogate_note"]
    assert finetune["surrogate"]["parameters"] == ["finetune_optimizer", "finetune_learning_rate"] or \
        sorted(finetune["surrogate"]["parameters"]) == ["finetune_learning_rate", "finetune_optimizer"]
    assert layer["surrogate"]["parameters"] == ["delimiting_layer"]
    ev = insight["evaluation"]
    assert ev["trial_id"] == stack.client.best_trial(stack.finished).id
    test = next(s for s in ev["splits"] if s["split"] == "test")
    assert test["confusion_matrix"] == [[17, 2, 1], [1, 18, 1], [1, 0, 19]]
    assert [r["class"] for r in test["per_class"]] == ["polyps", "ulcerative-colitis", "normal-cecum", "Average"]
    assert test["baselines"]["rows"][0]["method"].startswith("This study's best model")  # a kvasir dataset


def test_bad_requests_are_refused_with_a_reason(stack):
    status, body = get(f"{stack.url}api/studies/st-nope")
    assert status == 404 and "not found" in body["error"]
    assert get(f"{stack.url}api/studies/st-nope/events")[0] == 404
    assert get(f"{stack.url}api/studies/st-nope/insight")[0] == 404
    assert post(f"{stack.url}api/studies/st-nope/stop")[0] == 404
    assert get(f"{stack.url}api/jobs/nope")[0] == 404
    export = f"{stack.url}api/studies/{stack.finished}/export"
    for name in ("../etc", "", "a b", "x" * 65, None):
        status, body = post(export, {"model_name": name})
        assert status == 400 and "model_name" in body["error"], name
    assert post(export, b"[1, 2")[0] == 400 and post(export, b"x" * 5000)[0] == 400
    status, body = post(export, {"model_name": "polyp"})  # this dashboard has no --export-to
    assert status == 409 and "--export-to" in body["error"]


def test_actions_are_refused_unless_enabled(stack, tmp_path):
    url, process = start_dashboard(stack.optimizer, "--export-to", str(tmp_path / "models"))
    try:
        status, config = get(f"{url}api/config")
        assert status == 200 and config["actions"] is False
        for action in ("stop", "export"):
            status, body = post(f"{url}api/studies/{stack.finished}/{action}", {"model_name": "polyp"})
            assert status == 403 and "--enable-actions" in body["error"]
        assert stack.client.get_study(stack.finished).state == 2  # still completed, nothing changed
        assert not (tmp_path / "models").exists()
    finally:
        assert stop(process) == 0


def test_the_vendored_chart_library_is_the_recorded_npm_file():
    for name, entry in record()["files"].items():
        data = (VENDOR / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], f"{name} differs from vendor.json: run make vendor"
    html = (Path(VENDOR).parent / "index.html").read_text()
    assert "http://" not in html and "https://" not in html  # nothing from a CDN
