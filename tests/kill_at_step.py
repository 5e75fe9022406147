"""``python tests/kill_at_step.py N ARGS...``: run ``zoneout ARGS...`` and SIGKILL the process as its
training step N + 1 begins (after step N and its bookkeeping, checkpoint included, as a machine
dying between two steps would). For the kill-and-resume test: the production loop has no hook."""

from __future__ import annotations

import os
import signal
import sys

from tf_zoneout_train import loop


def die_after(steps: int) -> None:
    """Make every Trainer's step function SIGKILL its process when called the (steps + 1)-th time."""
    make_step = loop.Trainer._make_train_step

    def make_mortal_step(trainer):
        step = make_step(trainer)
        calls = [0]

        def mortal_step(batch, carry):
            if calls[0] == steps:
                os.kill(os.getpid(), signal.SIGKILL)
            calls[0] += 1
            return step(batch, carry)

        return mortal_step

    loop.Trainer._make_train_step = make_mortal_step


if __name__ == "__main__":
    die_after(int(sys.argv[1]))
    from tf_zoneout_train.cli import main

    raise SystemExit(main(sys.argv[2:]))
