"""``make vendor``: fetches the dashboard's charting library from the npm registry (``npm pack``),
checks the tarball's integrity against ``static/vendor/vendor.json`` and copies the file into the
package. Run it after changing the version there; tests/dashboard checks the committed file's sha256."""
from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

VENDOR = Path(__file__).parent / "static" / "vendor"


def record() -> dict:
    return json.loads((VENDOR / "vendor.json").read_text())


def fetch() -> None:
    for name, entry in record()["files"].items():
        with tempfile.TemporaryDirectory() as tmp:
            spec = f"{entry['package']}@{entry['version']}"
            out = subprocess.run(["npm", "pack", spec, "--json", "--pack-destination", tmp], check=True,
                                 capture_output=True, text=True).stdout
            tarball = Path(tmp) / json.loads(out)[0]["filename"]
            digest = "sha512-" + base64.b64encode(hashlib.sha512(tarball.read_bytes()).digest()).decode()
            if digest != entry["npm_integrity"]:
                sys.exit(f"{spec}: integrity {digest} does not match vendor.json's {entry['npm_integrity']}")
            with tarfile.open(tarball) as tar:
                data = tar.extractfile(f"package/{entry['from']}").read()
                for extra in ("LICENSE", "NOTICE"):
                    try:
                        text = tar.extractfile(f"package/{extra}").read()
                    except KeyError:
                        continue
                    (VENDOR / f"{entry['package']}.{extra}").write_bytes(text)
        (VENDOR / name).write_bytes(data)
        sha = hashlib.sha256(data).hexdigest()
        if sha != entry["sha256"]:
            print(f"{name}: sha256 is now {sha}; update vendor.json if this version change is intended")
        print(f"vendored {spec} -> {VENDOR / name} ({len(data)} bytes)")


if __name__ == "__main__":
    fetch()
