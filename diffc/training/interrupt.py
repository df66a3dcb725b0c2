"""Stopping a run without losing work: the first SIGINT (Ctrl-C) or SIGTERM asks the loop to finish its step,
write a checkpoint and exit; a second one aborts at once (atomic writes leave the old files or the new ones)."""
from __future__ import annotations

import signal
import sys
import threading

from diffc.errors import Interrupted

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """Context manager: while active, `signum` records the first stop signal received (None until then)."""

    def __init__(self):
        self.signum = None
        self._previous = {}

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():   # handlers can only be set there
            self._previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        if self.signum is not None:
            raise Interrupted(signum, f"{name} again: aborted at once; the last checkpoint on disk is intact")
        self.signum = signum
        print(f"\n{name}: finishing this step and writing a checkpoint ({name} again aborts at once)",
              file=sys.stderr, flush=True)
