"""``saga weights upload`` checks a file before it stores it; ``saga weights pretrain`` refuses bad
arguments with a message (the pre-training itself runs in the demo's end-to-end test)."""
from __future__ import annotations

from pathlib import Path

import keras
import pytest

from saga.cli.main import main


def test_upload_stores_a_checked_model_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3), alpha=0.35)
    model.save(tmp_path / "m.keras")
    store = tmp_path / "store"
    assert main(["weights", "upload", str(tmp_path / "m.keras"), f"{store}/weights/m.keras"]) == 0
    assert (store / "weights" / "m.keras").read_bytes() == (tmp_path / "m.keras").read_bytes()
    out = capsys.readouterr().out
    assert f"stored {store}/weights/m.keras" in out and "model: {weights:" in out


@pytest.mark.parametrize("name,data,target,message", [
    ("w.bin", b"x", "w.bin", "ends in .keras"),
    ("w.keras", b"not a zip", "w.keras", "cannot read w.keras"),
    ("w.weights.h5", b"not hdf5", "w.weights.h5", "not an HDF5 file"),
])
def test_upload_refuses_what_a_study_could_not_load(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    name: str, data: bytes, target: str, message: str) -> None:
    (tmp_path / name).write_bytes(data)
    assert main(["weights", "upload", str(tmp_path / name), f"{tmp_path}/store/{target}"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "store").exists()


@pytest.mark.parametrize("argv,message", [
    (["--backbone", "ResNet51", "--out", "/x/w.keras"], "unknown backbone 'ResNet51'"),
    (["--backbone", "MobileNetV2", "--out", "/x/w.h5"], "stored as a .keras file"),
    (["--backbone", "MobileNetV2", "--out", "/x/w.keras", "--epochs", "0"], "epochs must be >= 1"),
    (["--backbone", "MobileNetV2", "--out", "/x/w.keras", "--option", "alpha"], "expected KEY=VALUE"),
    (["--backbone", "MobileNetV2", "--out", "/x/w.keras", "--augmentation", '{"rotate": 400}'],
     "--augmentation: rotate: Input should be less than or equal to 180"),
    (["--backbone", "MobileNetV2", "--out", "/x/w.keras", "--augmentation", '{"shear": 0.1}'],
     "--augmentation: shear: Extra inputs are not permitted"),
    (["--backbone", "MobileNetV2", "--out", "/x/w.keras", "--augmentation", "{not json"], "--augmentation: "),
])
def test_pretrain_refuses_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        argv: list[str], message: str) -> None:
    assert main(["weights", "pretrain", str(tmp_path / "no-dataset"), *argv]) == 2
    assert message in capsys.readouterr().err


def test_pretrain_names_a_missing_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["weights", "pretrain", str(tmp_path / "none"), "--backbone", "MobileNetV2", "--out", f"{tmp_path}/w.keras"]
    assert main(argv) == 2
    assert "manifest" in capsys.readouterr().err
