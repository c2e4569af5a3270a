"""Ctrl-C and SIGTERM end the `saga` client commands at once (issue 17): a quiet WatchStudy stream,
a study created with --watch, a command waiting on an optimizer that never answers."""
from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.optimizer.conftest import service, small_spec  # noqa: F401  (fixture)

SAGA = [sys.executable, "-m", "saga.cli.main"]


def interrupt_after_first_line(argv: list[str], sig: int, stdin: str | None = None) -> tuple[int, float, str]:
    """Starts ``saga ARGV``, waits for its first line of output, sends ``sig``; returns the exit code,
    the seconds from the signal to the exit, and stderr."""
    p = subprocess.Popen(SAGA + argv, stdin=subprocess.PIPE if stdin else None, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        if stdin:
            p.stdin.write(stdin)
            p.stdin.close()
        first = p.stdout.readline()
        assert first, p.stderr.read()
        sent = time.monotonic()
        p.send_signal(sig)
        rc = p.wait(timeout=20)
        return rc, time.monotonic() - sent, p.stderr.read()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_watch_of_a_quiet_study_ends_within_a_second(service, sig, code):
    target, core = service
    study = core.create_study(small_spec())  # no worker: the stream stays quiet after its snapshot
    for _ in range(3):
        rc, took, err = interrupt_after_first_line(["study", "--optimizer", target, "watch", study.id], sig)
        assert rc == code, err
        assert took < 1.0, f"exit took {took:.2f}s"
        assert "Traceback" not in err, err


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_create_with_watch_ends_within_a_second_and_the_study_goes_on(service, sig, code):
    target, core = service
    rc, took, err = interrupt_after_first_line(["study", "--optimizer", target, "create", "-", "--watch"], sig,
                                               stdin=json.dumps(small_spec()))
    assert (rc, "Traceback" in err) == (code, False), err
    assert took < 1.0, f"exit took {took:.2f}s"
    [study] = core.list_studies()
    assert study.state == "ACTIVE"  # leaving the watch does not stop the study


def test_a_call_to_an_optimizer_that_never_answers_ends_on_ctrl_c(tmp_path):
    # A listening socket that never speaks gRPC: the client waits on its deadline and retries.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        target = f"127.0.0.1:{silent.getsockname()[1]}"
        p = subprocess.Popen(SAGA + ["study", "--optimizer", target, "list"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        try:
            time.sleep(3)  # well inside the call's 30 s deadline
            assert p.poll() is None
            sent = time.monotonic()
            p.send_signal(signal.SIGINT)
            rc = p.wait(timeout=20)
            took = time.monotonic() - sent
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert rc == 130 and took < 1.0, (rc, took)
    assert "Traceback" not in p.stderr.read()
