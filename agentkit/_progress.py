"""A one-line progress display on stderr for long work (a download, a model load).

It is drawn only when the stream is a terminal, so logs, pipes and CI output stay clean.
"""

from __future__ import annotations

import sys
import threading
import time
from types import TracebackType
from typing import TextIO

_WIDTH = 24
# Redraws more often than this are invisible and only cost time.
_INTERVAL = 0.1


def on_terminal(stream: TextIO) -> bool:
    """Whether ``stream`` is an interactive terminal."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or closed
        return False


class Progress:
    """Show ``label`` with a bar (when ``total`` is known) or the seconds elapsed (when it is
    not), redrawn in place on ``stream`` (default stderr) until the ``with`` block ends.

    Args:
        label: What is being done, e.g. ``"loading smollm2-135m"``.
        total: The amount of work in bytes, when known; :meth:`advance` reports progress.
        stream: Where to draw; nothing is drawn unless it is a terminal.
        transient: Erase the line at the end instead of leaving a final summary.
        unit: Counts of what (e.g. ``"cases"``) when ``total`` is not a number of bytes.
    """

    def __init__(self, label: str, total: int | None = None, *, stream: TextIO | None = None,
                 transient: bool = False, unit: str | None = None) -> None:
        self.label = label
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = on_terminal(self.stream)
        self.transient = transient
        self.unit = unit
        self.done = 0
        self._start = self._drawn = time.monotonic()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def __enter__(self) -> Progress:
        self._start = time.monotonic()
        if self.enabled and self.total is None:
            # Nothing reports progress for indeterminate work, so a thread shows time passing.
            self._ticker = threading.Thread(target=self._tick, name="agentkit-progress",
                                            daemon=True)
            self._ticker.start()
        self._draw()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        if not self.enabled:
            return
        if self.transient and kind is None:
            self._write("\r\x1b[K")
        else:
            self._draw(end="\n")

    def advance(self, amount: int) -> None:
        """Count ``amount`` more units of work done."""
        self.done += amount
        if self.enabled and time.monotonic() - self._drawn >= _INTERVAL:
            self._draw()

    def _tick(self) -> None:
        while not self._stop.wait(_INTERVAL * 2):
            self._draw()

    def _draw(self, end: str = "") -> None:
        if not self.enabled:
            return
        self._drawn = time.monotonic()
        elapsed = self._drawn - self._start
        if self.total:
            share = min(1.0, self.done / self.total)
            bar = "#" * round(share * _WIDTH)
            amount = (f"{self.done}/{self.total} {self.unit}" if self.unit else
                      f"{self.done / 1e6:.1f}/{self.total / 1e6:.1f} MB")
            text = f"{self.label} [{bar:<{_WIDTH}}] {share:4.0%} {amount}"
        else:
            text = f"{self.label} ... {elapsed:.1f} s"
        self._write(f"\r\x1b[K{text}{end}")

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()
