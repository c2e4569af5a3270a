"""The supervisor: readiness from the log, death reports with the last log lines, and a stop that
leaves nothing behind (grandchildren included, SIGTERM-ignoring children killed)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from saga.local.processes import ProcessError, Supervisor

from .helpers import alive, in_groups


def _py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_ready_line_is_matched_and_stop_reaches_grandchildren(tmp_path: Path) -> None:
    sup = Supervisor(tmp_path / "logs", stop_timeout_s=5)
    with sup:
        # The child starts a grandchild of its own, then reports the port it "listens" on.
        child = sup.start("svc", ["bash", "-c", "sleep 300 & echo listening on 127.0.0.1:4242; wait"],
                          ready=r"listening on (\S+):(\d+)", ready_timeout_s=20)
        assert child.ready is not None and child.ready.group(2) == "4242"
        time.sleep(0.3)
        group = in_groups({child.pid})
        assert len(group) >= 2  # bash and its sleep
    assert not alive(child.pid)
    assert in_groups({child.pid}) == set(), "a grandchild survived the stop"
    assert (tmp_path / "logs" / "svc.log").read_text().startswith("listening on")


def test_child_ignoring_sigterm_is_killed(tmp_path: Path) -> None:
    sup = Supervisor(tmp_path, stop_timeout_s=1.0)
    child = sup.start("stubborn", _py("import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                                      "print('up', flush=True)\ntime.sleep(300)"), ready="up")
    started = time.monotonic()
    assert sup.stop_all() == ["stubborn"]
    assert time.monotonic() - started < 10
    assert not alive(child.pid)


def test_death_before_ready_names_child_and_quotes_log(tmp_path: Path) -> None:
    with Supervisor(tmp_path) as sup:
        with pytest.raises(ProcessError) as err:
            sup.start("broken", _py("import sys\nprint('config file missing: /etc/x.yaml')\nsys.exit(3)"),
                      ready="ready")
    text = str(err.value)
    assert "broken" in text and "exited with code 3" in text and "config file missing: /etc/x.yaml" in text


def test_ready_timeout_is_reported(tmp_path: Path) -> None:
    with Supervisor(tmp_path, stop_timeout_s=2) as sup:
        with pytest.raises(ProcessError, match=r"slow did not report ready within 1s"):
            sup.start("slow", _py("import time\nprint('loading', flush=True)\ntime.sleep(60)"),
                      ready="never", ready_timeout_s=1)


def test_check_reports_a_child_that_died(tmp_path: Path) -> None:
    with Supervisor(tmp_path) as sup:
        sup.start("steady", _py("import time\nprint('ok', flush=True)\ntime.sleep(60)"), ready="ok")
        sup.start("flaky", _py("print('ok', flush=True)\nraise SystemExit('lost my database')"), ready="ok")
        deadline = time.monotonic() + 20
        while not sup.dead() and time.monotonic() < deadline:
            time.sleep(0.1)
        with pytest.raises(ProcessError, match=r"(?s)flaky .*exited with code 1.*lost my database") as err:
            sup.check()
        assert "steady" not in str(err.value)


def test_children_stop_when_the_supervisor_is_killed(tmp_path: Path) -> None:
    """A supervisor killed with SIGKILL cannot stop anything; the kernel then sends its children SIGTERM."""
    script = ("import sys, time\nfrom pathlib import Path\nfrom saga.local.processes import Supervisor\n"
              f"sup = Supervisor(Path({str(tmp_path)!r}))\n"
              "child = sup.start('svc', [sys.executable, '-c', 'import time; print(\"up\", flush=True); time.sleep(300)'],"
              " ready='up')\n"
              "print(child.pid, flush=True)\ntime.sleep(300)\n")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                              cwd=Path(__file__).resolve().parents[2])
    child = int(parent.stdout.readline())
    try:
        assert alive(child)
        parent.kill()
        parent.wait(timeout=10)
        deadline = time.monotonic() + 10
        while alive(child) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(child), "a child outlived its killed supervisor"
    finally:
        if alive(child):
            os.kill(child, signal.SIGKILL)
