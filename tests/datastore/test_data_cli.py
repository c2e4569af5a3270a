"""``saga data synth | upload | info`` through the real CLI entry point."""
from __future__ import annotations

from pathlib import Path

import pytest

from datastore import load_manifest, open_store
from saga.cli.main import main


def test_synth_upload_info_roundtrip_on_s3(tmp_path: Path, s3_uri: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "src"
    assert main(["data", "synth", str(src), "--classes", "2", "--per-class", "8", "--size", "32",
                 "--videos", "2", "--corrupt", "1"]) == 0
    assert "wrote 16 images of 2 classes" in capsys.readouterr().out
    assert main(["data", "upload", str(src), s3_uri, "--split", "0.5,0.5",
                 "--group-by", r"^([^/]+/video_[0-9]+)/"]) == 0
    captured = capsys.readouterr()
    assert "skipped polyp/corrupt_000_truncated.jpg" in captured.out
    assert "uploaded 16/16" in captured.err  # progress counts
    manifest = load_manifest(open_store(s3_uri))
    assert manifest.sha256 in captured.out
    assert manifest.counts() == {"train": {"polyp": 4, "ulcer": 4},
                                 "validation": {"polyp": 4, "ulcer": 4}}
    assert main(["data", "info", s3_uri]) == 0
    assert manifest.sha256 in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["upload", "{src}", "{dst}", "--split", "0.9,0.2"], "sum to 1"),
    (["upload", "{tmp}/missing", "{dst}"], "not a directory"),
    (["info", "{dst}"], "no manifest.json"),
    (["synth", "{dst}", "--classes", "12"], "classes must be"),
])
def test_bad_input_is_a_message_and_exit_code_2(tmp_path: Path, argv: list[str], message: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "src"
    (src / "a").mkdir(parents=True)
    values = {"src": str(src), "dst": str(tmp_path / "dst"), "tmp": str(tmp_path)}
    assert main(["data", *[arg.format(**values) for arg in argv]]) == 2
    assert message in capsys.readouterr().err
