"""A CLI that answers at once: every command's --help, every argument error and `saga --version`
without importing TensorFlow (or anything else heavy), checked in a fresh interpreter."""
from __future__ import annotations

import json
import subprocess
import sys

from saga.cli.main import COMMANDS

HEAVY = ("tensorflow", "keras", "GPyOpt", "GPy", "matplotlib", "cv2", "sklearn", "pandas", "starlette")
# Every command and sub-command, as a user asks for help or gets an argument wrong.
CALLS = [[name, "--help"] for name in COMMANDS] + [[name, "--no-such-flag"] for name in COMMANDS] + [
    ["--version"], ["--help"], ["nonsense"],
    ["study", "create", "--help"], ["study", "list", "--help"], ["study", "trials", "--help"],
    ["study", "watch"], ["study", "trials", "st-1", "--csv", "--json"],
    ["data", "upload", "--help"], ["export", "st-1"], ["classify", "x.mp4"], ["serve", "--grpc-port", "x"],
    ["dashboard", "--port", "many"], ["report", "st-1"],
]

PROBE = """
import json, sys
from saga.cli.main import main
out = []
for argv in json.loads(sys.argv[1]):
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    out.append([argv, code, [m for m in %r if m in sys.modules]])
print("RESULT" + json.dumps(out))
""" % (HEAVY,)


def test_help_version_and_argument_errors_import_nothing_heavy():
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(CALLS)], capture_output=True, text=True,
                          timeout=120)
    results = json.loads(done.stdout.split("RESULT", 1)[1])
    for argv, code, heavy in results:
        assert heavy == [], f"saga {' '.join(argv)} imported {heavy}"
        expected = 0 if ("--help" in argv or argv == ["--version"]) else 2
        assert code == expected, f"saga {' '.join(argv)} exited {code}"
    assert "saga 0.1.0" in done.stdout or "saga unknown" in done.stdout
    assert "dashboard" in done.stdout  # listed in `saga --help`
    assert "Traceback" not in done.stderr and "cuda" not in done.stderr.lower()
