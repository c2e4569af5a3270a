"""The committed stubs in saga/v1 are what `make proto` generates from proto/saga/v1/optimizer.proto."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_generated_stubs_are_up_to_date(tmp_path):
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{ROOT / 'proto'}", f"--python_out={tmp_path}",
                    f"--pyi_out={tmp_path}", f"--grpc_python_out={tmp_path}",
                    str(ROOT / "proto/saga/v1/optimizer.proto")], check=True)
    for name in ("optimizer_pb2.py", "optimizer_pb2.pyi", "optimizer_pb2_grpc.py"):
        assert (tmp_path / "saga/v1" / name).read_text() == (ROOT / "saga/v1" / name).read_text(), \
            f"saga/v1/{name} is stale: run `make proto`"
