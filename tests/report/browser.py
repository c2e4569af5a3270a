"""Opens a page in headless Chromium (Debian's ``chromium``): what the page loaded, and a screenshot.

Chromium prints nothing for a broken image, so the check runs inside the page: a copy of it gets a
script first in ``<head>`` that records every error event (scripts, and resources in the capture
phase) and, once loaded, every image that did not decode; ``--dump-dom`` hands the record back.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
         "--no-first-run", "--disable-component-update", "--disable-sync"]

PROBE = """<script>
window.__errors = [];
window.addEventListener("error", e => window.__errors.push(
  e.message || ("cannot load " + ((e.target && (e.target.src || e.target.href)) || "?").slice(0, 80))), true);
window.addEventListener("load", () => {
  const broken = [...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.alt);
  const out = document.createElement("pre");
  out.id = "__probe";
  out.textContent = JSON.stringify({errors: window.__errors, broken: broken, images: document.images.length,
                                    tables: document.querySelectorAll("table").length,
                                    title: document.title});
  document.body.appendChild(out);
});
</script>"""


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        raise AssertionError("chromium is not installed: `make test` installs it (apt-get install chromium), "
                             "or run `apt-get install chromium` as root")
    return path


def _run(args: list[str], profile: str, timeout: float = 120) -> str:
    done = subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                          text=True, timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"chromium exited {done.returncode}: {done.stderr[-2000:]}")
    return done.stdout


def probe(page: Path) -> dict:
    """Errors, undecodable images and counts, as the page itself saw them."""
    text = page.read_text(encoding="utf-8")
    head = text.index("<head>") + len("<head>")
    with tempfile.TemporaryDirectory() as tmp:
        copy = page.parent / f".probe-{page.name}"
        copy.write_text(text[:head] + PROBE + text[head:], encoding="utf-8")
        try:
            dom = _run(["--virtual-time-budget=10000", "--dump-dom", copy.resolve().as_uri()], tmp)
        finally:
            copy.unlink()
    m = re.search(r'<pre id="__probe">(.*?)</pre>', dom, re.S)
    if not m:
        raise AssertionError(f"the page never finished loading: {dom[-1000:]}")
    return json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<")
                      .replace("&gt;", ">"))


def screenshot(page: Path, out: Path, size: str = "1200,2400") -> Path:
    with tempfile.TemporaryDirectory() as tmp:
        _run([f"--window-size={size}", f"--screenshot={out}", page.resolve().as_uri()], tmp)
    return out
