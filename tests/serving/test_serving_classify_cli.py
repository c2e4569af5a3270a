"""`saga classify` on a short generated video prints per-frame results and the summary."""
from __future__ import annotations

import cv2
import numpy as np

from saga.cli.main import main
from tests.serving.helpers import make_images


def _video(path, frames: int = 12) -> None:
    images, _ = make_images(frames, seed=21, size=48)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (48, 48))
    for image in images:
        writer.write(np.ascontiguousarray(image[:, :, ::-1]))
    writer.release()


def test_classify_video_over_grpc_writes_annotated_video(server, tmp_path, capsys) -> None:
    video, out = tmp_path / "clip.avi", tmp_path / "annotated.avi"
    _video(video)
    code = main(["classify", str(video), "--server", f"127.0.0.1:{server.grpc_port}", "--model", "demo",
                 "--out", str(out)])
    text = capsys.readouterr().out
    assert code == 0, text
    assert sum(line.startswith("frame ") for line in text.splitlines()) == 12
    assert "frames: 12  failures: 0" in text and "latency p50:" in text and "real-time target" in text
    capture = cv2.VideoCapture(str(out))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 12
    capture.release()


def test_classify_folder_over_rest_and_unknown_model_fails(server, tmp_path, capsys) -> None:
    for i, image in enumerate(make_images(3, seed=22)[0]):
        cv2.imwrite(str(tmp_path / f"{i:03d}.png"), image)
    assert main(["classify", str(tmp_path), "--server", f"127.0.0.1:{server.rest_port}", "--rest",
                 "--model", "demo"]) == 0
    assert "frames: 3  failures: 0" in capsys.readouterr().out
    assert main(["classify", str(tmp_path), "--server", f"127.0.0.1:{server.rest_port}", "--rest",
                 "--model", "nope", "--quiet"]) == 1
    text = capsys.readouterr().out
    assert "HTTP 404" in text and "failures: 3" in text
