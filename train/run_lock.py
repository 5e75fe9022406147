"""One writer per run folder: an exclusive lock held while a trainer works in it.

``RunLock(run_dir)`` takes an ``fcntl`` lock on ``run_dir/.lock`` and writes the holder's pid, host
and start time into it. The operating system drops the lock when the holder exits, however it
exits (SIGKILL included), so a lock file left behind by a dead trainer is stale by construction and
is simply taken over; a live holder makes a second trainer refuse with a message naming it.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path

from tf_zoneout.errors import ZoneoutError

LOCK_FILE = ".lock"


class RunFolderInUseError(ZoneoutError, RuntimeError):
    """Another trainer is working in this run folder."""


class RunLock:
    """Context manager: hold ``run_dir``'s lock, or raise ``RunFolderInUseError`` at once."""

    def __init__(self, run_dir: str | os.PathLike):
        self.path = Path(run_dir) / LOCK_FILE
        self._handle = None

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")  # held open for the life of the lock
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = _describe(handle.read())
            handle.close()
            raise RunFolderInUseError(
                f"{self.path.parent} is in use by another trainer ({holder}); wait for it to finish "
                "or stop it, or choose another --run-dir"
            ) from None
        handle.seek(0)
        handle.truncate()
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        handle.write(json.dumps(holder) + "\n")
        handle.flush()
        self._handle = handle
        return self

    def __exit__(self, *exc):
        if self._handle is not None:
            self._handle.close()  # releases the lock; the file stays, stale, for the next taker
            self._handle = None


def _describe(text: str) -> str:
    try:
        holder = json.loads(text)
        return f"pid {holder['pid']} on host {holder['host']}, since {holder['since']}"
    except (ValueError, KeyError, TypeError):
        return "a process that has not written its pid yet"
