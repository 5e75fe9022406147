"""SIGTERM and SIGINT as requests to stop at the next step boundary, not as sudden death.

Preemptible machines, Kubernetes and Slurm send SIGTERM and wait a grace period before SIGKILL.
Inside ``StopSignals()`` the first SIGTERM or SIGINT only sets ``requested`` (the signal's name);
the training loop finishes its step, checkpoints the exact position and raises ``StoppedBySignalError``.
A second SIGINT (Ctrl-C twice) stops at once, as usual. The previous handlers come back on exit.

A multi-worker run cannot stop one worker alone (saving is a collective): there
``preemption_handler`` wires TensorFlow's own ``PreemptionCheckpointHandler``, which agrees through
the coordination service on the step at which every worker saves after a SIGTERM to any of them.
"""

from __future__ import annotations

import signal
import tempfile
import threading

from tf_zoneout.errors import ZoneoutError

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StoppedBySignalError(ZoneoutError, RuntimeError):
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


def preemption_handler(strategy, save_fn, exit_fn):
    """TensorFlow's ``PreemptionCheckpointHandler`` for a ``MultiWorkerMirroredStrategy`` run.

    After a SIGTERM to any worker, every worker's next ``save_checkpoint_if_preempted(*args)`` call
    (once per training step, on every worker) that reaches the agreed step calls ``save_fn(*args)``
    (a collective save of the exact position), then ``exit_fn()`` (which raises
    ``StoppedBySignalError``). Our own checkpoint manager writes the checkpoint (through ``save_fn``),
    and the run is restored by the trainer before the handler exists, so the handler is given an
    empty checkpoint in a scratch folder for its own restore at creation: its step counter then
    starts at 0 on every worker, as the agreement needs.

    Returns:
        (handler, the scratch folder to delete at the end).
    """
    import tensorflow as tf

    scratch = tempfile.mkdtemp(prefix="zoneout-preemption-")
    nothing = tf.train.CheckpointManager(tf.train.Checkpoint(), scratch, max_to_keep=1)
    config = tf.distribute.experimental.TerminationConfig(exit_fn=exit_fn, save_fn=save_fn, grace_period=0)
    handler = tf.distribute.experimental.PreemptionCheckpointHandler(
        strategy.cluster_resolver, nothing, termination_config=config
    )
    return handler, scratch
