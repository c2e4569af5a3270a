"""`--optimizer` is accepted wherever a user puts it (`saga up` prints
`saga study create SPEC --optimizer HOST:PORT --watch`), and study status shows why trials failed."""
from __future__ import annotations

import json

import pytest

from saga.cli.main import main
from tests.optimizer.conftest import service, small_spec  # noqa: F401  (fixture)


@pytest.mark.parametrize("where", ["before the command", "before the action", "after the action"])
def test_study_list_takes_optimizer_anywhere(service, capsys, where) -> None:
    target, core = service
    study = core.create_study(small_spec())
    argv = {"before the command": ["--optimizer", target, "study", "list"],
            "before the action": ["study", "--optimizer", target, "list"],
            "after the action": ["study", "list", "--optimizer", target]}[where]
    assert main(argv) == 0
    assert study.id in capsys.readouterr().out


def test_create_and_status_with_optimizer_after_their_arguments(service, capsys, tmp_path) -> None:
    target, core = service
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(small_spec(budget={"max_attempts": 1, "max_failed_trials": 1})))
    assert main(["study", "create", str(spec), "--optimizer", target]) == 0
    study_id = capsys.readouterr().out.split()[2]
    trial, lease = core.lease_trial("w", study_id)
    core.complete_trial(trial.id, lease.id, "INFEASIBLE", {}, {},
                        "WeightsError: 3 layers of saga_VGG16 have no weights in the file")
    assert main(["study", "status", study_id, "--optimizer", target]) == 0
    out = capsys.readouterr().out
    assert "failed  (1 trial failed in a row (budget.max_failed_trials = 1); last: WeightsError" in out
    assert f"infeasible {trial.id}: WeightsError: 3 layers of saga_VGG16 have no weights in the file" in out
    assert main(["study", "watch", study_id, "--optimizer", target]) == 1  # the study failed
    closing = [line for line in capsys.readouterr().out.splitlines() if line.startswith(f"study {study_id} ")]
    assert "last: WeightsError" in closing[-1]  # the summary says why the study ended


def test_optimizer_for_a_command_that_does_not_use_it_is_an_error(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--optimizer", "localhost:1", "serve", "--model-base", "/nowhere", "--model-name", "m"])
    assert exit_.value.code == 2 and "does not talk to the optimizer" in capsys.readouterr().err
