"""SIGTERM and SIGINT as requests to stop at the next step boundary, not as sudden death.

Preemptible machines, Kubernetes and Slurm send SIGTERM and wait a grace period before SIGKILL.
Inside ``StopSignals()`` the first SIGTERM or SIGINT only sets ``requested`` (the signal's name);
the training loop finishes its step, checkpoints the exact position and raises ``StoppedBySignalError``.
A second SIGINT (Ctrl-C twice) stops at once, as usual. The previous handlers come back on exit.
"""

from __future__ import annotations

import signal
import threading

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StoppedBySignalError(RuntimeError):
    """Training stopped on a signal after checkpointing; ``exit_status`` is 128 + the signal number."""

    def __init__(self, message: str, signal_number: int):
        super().__init__(message)
        self.exit_status = 128 + signal_number


class StopSignals:
    """Context manager catching SIGTERM and SIGINT (in the main thread; elsewhere it does nothing)."""

    def __init__(self):
        self.requested: str | None = None
        self.number = 0
        self._previous = {}

    def _handle(self, number, frame):
        if self.requested and number == signal.SIGINT:
            raise KeyboardInterrupt  # the second Ctrl-C: stop now
        self.requested, self.number = signal.Signals(number).name, number

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for number in SIGNALS:
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc):
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous.clear()
