"""Progress of a slow step in the CLI: a line when it starts, a line every few seconds while it runs
(so a minutes-long export or report is never silent), and its duration when it ends."""
from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

# Often enough that a user sees the command is alive, rarely enough to keep a log readable.
TICK_S = 10.0


class Step:
    """``with Step("exporting trial t-1"): ...`` prints ``exporting trial t-1 ...``, then
    ``  ... still exporting trial t-1 (20s)`` every ``tick`` seconds, then ``... done in 42s``."""

    def __init__(self, label: str, *, tick: float = TICK_S, out: TextIO | None = None):
        self.label = label
        self.tick = tick
        self.out = out or sys.stdout
        self._done = threading.Event()
        self._started = 0.0

    def _say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def _ticker(self) -> None:
        while not self._done.wait(self.tick):
            self._say(f"  ... still {self.label} ({time.monotonic() - self._started:.0f}s)")

    def __enter__(self) -> "Step":
        self._started = time.monotonic()
        self._say(f"{self.label} ...")
        threading.Thread(target=self._ticker, name="progress", daemon=True).start()
        return self

    def __exit__(self, exc_type, *_: object) -> None:
        self._done.set()
        took = time.monotonic() - self._started
        self._say(f"{self.label}: {'done' if exc_type is None else 'failed'} in {took:.1f}s")
