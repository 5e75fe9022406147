"""The one training loop of every task: distributed, checkpointed, resumable, guarded.

``Trainer(task, run_dir).run()`` trains ``task`` under the configured tf.distribute
strategy and leaves a run folder:

    config.json  metrics.json  learning_curve.png  tensorboard/  checkpoints/  best/  export/

Checkpoints (every ``checkpoint_every`` steps and after each epoch) hold the weights,
the optimizer, the seed generators' states, the position in the data and the state
carried between batches, so a resumed run continues exactly where it stopped. SIGTERM or SIGINT
stops a single-process run at the next step with such a checkpoint (``StoppedBySignalError``); in a
multi-worker run a SIGTERM to any worker makes every worker save at the same step and stop
(TensorFlow's ``PreemptionCheckpointHandler``; every worker restores the chief's checkpoint); a resume
starts from the newest checkpoint that reads back whole (``checkpoint_recovery``); one trainer at a
time works in a run folder (``RunLock``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import signal
import sys
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from tf_zoneout.errors import ZoneoutError
from tf_zoneout_train import distribute, run_files
from tf_zoneout_train.config import RESUMES_KEY, ConfigError, RunConfig
from tf_zoneout_train.stop_signals import StoppedBySignalError

# The learning curve is redrawn after an epoch only if the last drawing is this old (and always at
# the end of the run): drawing it takes 0.4-1 s, which runs of many short epochs paid every epoch.
PLOT_EVERY_SECONDS = 30.0
# mixed_float16: the loss scale Keras's LossScaleOptimizer starts from (halved after a step whose
# gradients overflow float16, which is then skipped; doubled after 2,000 good steps).
INITIAL_LOSS_SCALE = 2.0**15


class TrainingDivergedError(ZoneoutError, RuntimeError):
    """The loss became NaN or Inf; the last good checkpoint is kept."""


class RunFolderError(ZoneoutError, RuntimeError):
    """The run folder cannot be used as asked (exists without --resume, or missing with it)."""


def progress_interval() -> float:
    """Seconds between progress-bar updates: live on a terminal; every 30 s when stderr is a file
    (a nohup log of a long run would otherwise grow by a line's worth of bytes per batch)."""
    stream = sys.stderr
    return 0.1 if hasattr(stream, "isatty") and stream.isatty() else 30.0


def make_optimizer(config: RunConfig) -> keras.Optimizer:
    """The configured optimizer; its learning rate is a variable the schedule assigns. Under
    ``precision=mixed_float16`` it is wrapped in Keras's ``LossScaleOptimizer`` (dynamic loss
    scaling: float16 gradients would underflow unscaled).

    The training step all-reduces the gradients itself (global-norm clipping needs their sum), so
    the optimizer is told not to all-reduce them again (``apply_reduced_gradients``).

    Args:
        config: the run's ``optimizer``, ``learning_rate``, ``momentum``, ``rmsprop_rho`` and
            ``precision``.
    """
    if config.optimizer == "adam":
        optimizer = keras.optimizers.Adam(config.learning_rate)
    elif config.optimizer == "sgd":
        optimizer = keras.optimizers.SGD(config.learning_rate, momentum=config.momentum)
    else:
        optimizer = keras.optimizers.RMSprop(
            config.learning_rate, rho=config.rmsprop_rho, momentum=config.momentum
        )
    apply_reduced_gradients(optimizer)
    if config.precision == "mixed_float16":
        return keras.optimizers.LossScaleOptimizer(optimizer, initial_scale=INITIAL_LOSS_SCALE)
    return optimizer


def apply_reduced_gradients(optimizer: keras.Optimizer) -> None:
    """Make ``optimizer`` apply the gradients it is given as they are, without all-reducing them
    over the replicas first: the training step has summed them already (one all-reduce per step,
    not two).

    Keras's TensorFlow optimizer all-reduces inside ``apply`` (``_all_reduce_sum_gradients``), with
    no public switch to turn it off; this replaces that method on this one instance by the identity.

    Args:
        optimizer: a Keras optimizer (not yet wrapped in a ``LossScaleOptimizer``).

    Raises:
        RuntimeError: this Keras's optimizer has no such method (its internals changed): the step
            would then apply R times the gradient, so training refuses to start.
    """
    if not callable(getattr(optimizer, "_all_reduce_sum_gradients", None)):
        raise RuntimeError(
            f"keras {keras.__version__}: {type(optimizer).__name__} has no _all_reduce_sum_gradients; "
            "tf-zoneout's training step cannot stop it from all-reducing the gradients a second time"
        )
    optimizer._all_reduce_sum_gradients = list


def scheduled_learning_rate(config: RunConfig, epoch: int, current: float, plateaued: bool) -> float:
    """Learning rate for ``epoch`` (0-based).

    constant; zaremba: ``lr * decay**max(0, epoch + 1 - decay_start)`` (Zaremba et
    al.: constant for ``decay_start`` epochs, then multiplied by ``decay`` each epoch);
    exponential: ``lr * decay**epoch``; plateau: ``current * decay`` after an epoch
    without validation improvement.

    Args:
        config: the run's ``lr_schedule``, ``learning_rate``, ``lr_decay`` and ``lr_decay_start``.
        epoch: the epoch about to run, from 0.
        current: the learning rate now (plateau decays from it).
        plateaued: whether the last epoch did not improve the validation metric.
    """
    if config.lr_schedule == "zaremba":
        return config.learning_rate * config.lr_decay ** max(0, epoch + 1 - config.lr_decay_start)
    if config.lr_schedule == "exponential":
        return config.learning_rate * config.lr_decay**epoch
    if config.lr_schedule == "plateau":
        return current * config.lr_decay if plateaued else current
    return config.learning_rate


@contextlib.contextmanager
def dtype_policy(name: str):
    """Keras's global dtype policy set to ``name`` while models are built, then restored.

    Layers read the policy when they are created: under "mixed_bfloat16" they compute in
    bfloat16 and keep float32 weights. Losses cast logits to float32.

    Args:
        name: a Keras policy name ("float32", "mixed_bfloat16").
    """
    before = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(before)


def weights_digest(model) -> str:
    """sha256 of every weight's bytes, in order: equal digests mean bitwise-equal weights.

    Args:
        model: a built Keras model.
    """
    digest = hashlib.sha256()
    for w in model.get_weights():
        digest.update(np.ascontiguousarray(w).tobytes())
    return digest.hexdigest()


@dataclasses.dataclass
class EpochTotals:
    """The running epoch's totals.

    Attributes:
        loss: the summed loss of its steps so far.
        count: the tokens (items) that loss sums over.
        steps: the steps run in this process (a resumed epoch's earlier steps are not counted).
    """

    loss: float = 0.0
    count: float = 0.0
    steps: int = 0

    @classmethod
    def resumed(cls, progress: dict) -> EpochTotals:
        """The totals a checkpoint holds (a run resumed mid-epoch reports the whole epoch's mean)."""
        return cls(float(progress["epoch_loss_sum"]), float(progress["epoch_count"]))

    def add(self, loss_sum: float, count: float) -> None:
        self.loss += loss_sum
        self.count += count
        self.steps += 1

    def store(self, progress: dict) -> None:
        """Into the checkpointed variables, before a save."""
        progress["epoch_loss_sum"].assign(self.loss)
        progress["epoch_count"].assign(self.count)


class Trainer:
    """Runs one task's training in ``run_dir`` (see the module docstring).

    Args:
        task: the experiment (a ``tasks.base.Task``, from ``tasks.get``).
        run_dir: the run folder: config, metrics, checkpoints, figures and the export.
        resume: continue the run in ``run_dir`` from its newest whole checkpoint.
        show_progress: progress bars (the chief only).
        strategy: the ``tf.distribute`` strategy; made from ``config.strategy`` when None.
            Multi-worker strategies must be created before any TensorFlow op runs, so
            ``zoneout train`` makes it first and passes it.

    Raises:
        RunFolderError: ``resume`` and no checkpoint in ``run_dir``, or a run there already and
            not ``resume``.
    """

    def __init__(
        self,
        task,
        run_dir: str | os.PathLike,
        resume: bool = False,
        show_progress: bool = True,
        strategy=None,
    ):
        self.task = task
        self.strategy = strategy
        self.config: RunConfig = task.config
        self.run_dir = Path(run_dir)
        self.resume = resume
        self.topology = distribute.topology()
        self.chief = self.topology.chief
        self.show_progress = show_progress and self.chief
        self._last_plot = time.monotonic()  # the first epoch's curve is drawn if it took long enough
        self._stop = None  # the StopSignals of a running single-process ``run()``
        self._preemption = None  # multi-worker runs: TensorFlow's PreemptionCheckpointHandler
        self._stopped_at = ""  # where a preempted multi-worker run saved (its exit message)
        self._check_run_dir()

    def _check_run_dir(self):
        has_checkpoint = (self.run_dir / "checkpoints" / "checkpoint").exists()
        if self.resume and not has_checkpoint:
            raise RunFolderError(f"--resume: {self.run_dir} has no checkpoint to resume from")
        if not self.resume and has_checkpoint:
            raise RunFolderError(
                f"{self.run_dir} already holds a run; pass --resume to continue it "
                "or choose another --run-dir"
            )

    # -- set-up ---------------------------------------------------------------------------------

    def _build(self):
        config = self.config
        if self.strategy is None:
            self.strategy = distribute.make_strategy(config.strategy)
        self.replicas = self.strategy.num_replicas_in_sync
        if config.batch_size % self.replicas:
            raise ConfigError(
                f"batch_size={config.batch_size} does not split over {self.replicas} replicas; "
                "use a multiple of the replica count"
            )
        self.replica_batch = config.batch_size // self.replicas
        with self.strategy.scope(), dtype_policy(config.precision):
            self.model = self.task.build_model(jit_compile="auto")
            self.model(self.task.sample_batch(), training=False)
            self.optimizer = make_optimizer(config)
            self.optimizer.build(self.model.trainable_variables)
        self.progress = {
            "epoch": tf.Variable(0, dtype=tf.int64),
            "step_in_epoch": tf.Variable(0, dtype=tf.int64),
            "global_step": tf.Variable(0, dtype=tf.int64),
            "best": tf.Variable(math.inf, dtype=tf.float64),
            "bad_epochs": tf.Variable(0, dtype=tf.int64),
            # The running epoch's loss sum and token count: a run resumed mid-epoch reports the
            # epoch's mean over all its steps, as the uninterrupted run does.
            "epoch_loss_sum": tf.Variable(0.0, dtype=tf.float64),
            "epoch_count": tf.Variable(0.0, dtype=tf.float64),
        }
        carry = self.task.initial_carry(config.batch_size)
        self.carry_store = [tf.Variable(c) for c in carry]
        self.checkpoint = checkpoint = tf.train.Checkpoint(
            weights=list(self.model.variables),
            optimizer=list(self.optimizer.variables),
            progress=self.progress,
            task=self.task.state_variables(),
            carry=self.carry_store,
        )
        # Every worker of a cluster takes part in saving; only the chief's copy is kept.
        checkpoint_dir = self.topology.folder(self.run_dir, "checkpoints")
        self.manager = tf.train.CheckpointManager(checkpoint, str(checkpoint_dir), max_to_keep=2)
        self.best = tf.train.CheckpointManager(
            tf.train.Checkpoint(weights=list(self.model.variables)),
            str(self.topology.folder(self.run_dir, "best")),
            max_to_keep=1,
        )
        self.train_step = self._make_train_step()

    def _make_train_step(self):
        model, optimizer, task, config = self.model, self.optimizer, self.task, self.config
        replicas = self.replicas
        variables = model.trainable_variables

        loss_scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)

        def replica_step(batch, carry):
            context = tf.distribute.get_replica_context()
            with tf.GradientTape() as tape:
                loss_sum, count, new_carry = task.loss(model, batch, carry, training=True)
                total = context.all_reduce(tf.distribute.ReduceOp.SUM, count) if replicas > 1 else count
                loss = loss_sum / total
                if config.loss_reduction == "sum_over_time":  # Zaremba's scale: x time steps per row
                    loss *= config.seq_len
                if model.losses:  # norm stabilizer: a per-replica mean, averaged over replicas
                    loss += tf.add_n(model.losses) / replicas
                if loss_scaled:  # mixed_float16: gradients of loss * scale, unscaled by apply
                    loss = optimizer.scale_loss(loss)
            grads = [tf.convert_to_tensor(g) for g in tape.gradient(loss, variables)]
            if replicas > 1:  # the step's one all-reduce: the optimizer does not repeat it
                grads = context.all_reduce(tf.distribute.ReduceOp.SUM, grads)
            scale = tf.convert_to_tensor(optimizer.dynamic_scale) if loss_scaled else 1.0
            norm = tf.linalg.global_norm(grads)
            if config.clip_norm:  # of the unscaled gradients: clip_norm * scale on the scaled ones
                grads, _ = tf.clip_by_global_norm(grads, config.clip_norm * scale, use_norm=norm)
            # Overflowed float16 gradients (inf/NaN) make the LossScaleOptimizer skip the step and
            # halve its scale; the loss itself stays finite, so the NaN guard does not stop the run.
            optimizer.apply(grads, variables)
            return loss_sum, count, new_carry, norm / scale

        # autograph=False: the step has no tensor-dependent Python control flow, and converting the
        # model's code took 1.5-2 s per run.
        @tf.function(jit_compile=config.jit_compile_step and replicas == 1, autograph=False)
        def train_step(batch, carry):
            loss_sum, count, new_carry, norm = self.strategy.run(replica_step, args=(batch, carry))
            reduce = self.strategy.reduce
            return (
                reduce(tf.distribute.ReduceOp.SUM, loss_sum, axis=None),
                reduce(tf.distribute.ReduceOp.SUM, count, axis=None),
                new_carry,
                reduce(tf.distribute.ReduceOp.MEAN, norm, axis=None),
            )

        return train_step

    def _distribute_carry(self, values):
        """Per-replica slices of the global carry tensors."""
        if not values:
            return []
        if self.replicas == 1:
            return [tf.convert_to_tensor(v) for v in values]
        rows = self.replica_batch

        def slice_for(context):
            start = context.replica_id_in_sync_group * rows
            return [tf.convert_to_tensor(v)[start : start + rows] for v in values]

        return self.strategy.experimental_distribute_values_from_function(slice_for)

    def _store_carry(self, carry):
        for variable, value in zip(self.carry_store, carry):
            if self.replicas > 1:
                value = self.strategy.gather(value, axis=0)
            variable.assign(value)

    # -- the loop --------------------------------------------------------------------------------

    def run(self) -> dict:
        """Train (or resume), evaluate on the test split, export; returns the final metrics.

        Raises:
            RunFolderInUseError: another trainer holds the run folder's lock.
            StoppedBySignalError: SIGTERM or SIGINT arrived; the position was checkpointed first.
            NoValidCheckpointError: resuming, and every checkpoint is damaged.
        """
        try:
            with self.topology.guard(self.run_dir) as self._stop:
                return self._run()
        finally:
            self.topology.close()

    def _stop_requested(self) -> bool:
        return bool(self._stop and self._stop.requested)

    def _write_config(self):
        """config.json: the configuration, and on a resume, when and what it changed."""
        path = self.run_dir / "config.json"
        fields = json.loads(self.config.to_json())
        before = run_files.read_json(path, {}) if self.resume else {}
        resumes = list(before.get(RESUMES_KEY, []))
        if self.resume:
            changed = {k: [before.get(k), v] for k, v in fields.items() if k in before and before[k] != v}
            resumes.append({"at": time.strftime("%Y-%m-%d %H:%M:%S"), "changed": changed})
        run_files.write_json(path, {**fields, **({RESUMES_KEY: resumes} if resumes else {})})

    def _restore_for_resume(self):
        directory = self.run_dir / "checkpoints"
        self.topology.restore(self.checkpoint, directory)  # every worker reads the chief's
        if self.chief:  # the state file now lists only whole checkpoints: number and prune from them
            self.manager = tf.train.CheckpointManager(self.checkpoint, str(directory), max_to_keep=2)

    def _run(self) -> dict:
        config = self.config
        # Read before anything is written: a damaged metrics.json stops the resume with nothing changed.
        earlier = run_files.read_json(self.run_dir / "metrics.json", {}) if self.resume else {}
        self._build()
        history: list[dict] = []
        if self.resume:
            self._restore_for_resume()
            done = int(self.progress["epoch"].numpy())
            history = [h for h in earlier.get("epochs", []) if h["epoch"] < done]
            if self.chief:
                print(
                    f"resuming {self.run_dir} at epoch {done + 1}, step {int(self.progress['step_in_epoch'])}"
                )
        if self.chief:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._write_config()
        # After the restore: a preemption handler's step counter starts at 0.
        self._preemption = self.topology.preemption_handler(
            self.strategy, self._save_position, self._exit_preempted
        )
        writer = tf.summary.create_file_writer(str(self.run_dir / "tensorboard")) if self.chief else None
        stopped_early = False
        try:
            while int(self.progress["epoch"]) < config.epochs:
                if config.patience and int(self.progress["bad_epochs"]) >= config.patience:
                    stopped_early = True
                    break
                history.append(self._train_epoch(int(self.progress["epoch"]), history, writer))
                self._write_metrics(history, final=None)
                if self._stop_requested():
                    self._interrupt(f"at the end of epoch {int(self.progress['epoch'])}")
            else:
                stopped_early = bool(config.patience) and int(self.progress["bad_epochs"]) >= config.patience
        finally:
            if writer is not None:
                writer.close()
        return self._finish(history, stopped_early)

    def _train_epoch(self, epoch: int, history: list[dict], writer) -> dict:
        """One epoch (or the rest of one, when resumed mid-epoch): its steps, then validation."""
        self._set_epoch_learning_rate(epoch, history)
        batches, num_batches, start_step = self._epoch_batches(epoch)
        carry = self._distribute_carry(
            [v.numpy() for v in self.carry_store]
            if start_step
            else self.task.initial_carry(self.config.batch_size)
        )
        # The epoch's loss sum and token count: Python floats on the hot path, written into their
        # checkpointed variables only before a save.
        totals = EpochTotals.resumed(self.progress) if start_step else EpochTotals()
        bar = self._progress_bar(epoch, num_batches, start_step)
        tokens_per_batch = self.task.tokens_per_batch()

        def where() -> str:  # for a stop's message, only when one comes
            return f"at epoch {epoch + 1}, step {start_step + totals.steps} of {num_batches}"

        started = time.perf_counter()
        for batch in batches:
            loss_sum, count, carry, grad_norm = self.train_step(batch, carry)
            loss_sum, count = float(loss_sum), float(count)
            step = int(self.progress["global_step"].assign_add(1))
            self.progress["step_in_epoch"].assign_add(1)
            self._check_finite(loss_sum, epoch, step, bar)
            totals.add(loss_sum, count)
            rate = totals.steps * tokens_per_batch / (time.perf_counter() - started)
            self._report_step(bar, writer, step, loss_sum / count, grad_norm, rate)
            if step % self.config.checkpoint_every == 0:
                self._save(carry, step, totals)
            if self._preemption is not None:  # every worker, every step: they agree where to save
                self._stopped_at = where()
                self._preemption.save_checkpoint_if_preempted(carry, step, totals)
            if self._stop_requested():
                bar.close()
                self._save(carry, step, totals)
                self._interrupt(where())
        bar.close()
        return self._end_epoch(epoch, totals, time.perf_counter() - started, writer)

    def _set_epoch_learning_rate(self, epoch: int, history: list[dict]) -> None:
        """The schedule's rate at an epoch's start (a plateau: the last epoch did not improve)."""
        if int(self.progress["step_in_epoch"]) != 0:
            return  # resumed mid-epoch: the checkpoint holds the rate
        lr_variable = self.optimizer.learning_rate
        plateaued = (
            bool(history)
            and int(self.progress["bad_epochs"]) > 0
            and history[-1].get("improved") is False
            and self.task.lr_may_decay()
        )
        lr_variable.assign(scheduled_learning_rate(self.config, epoch, float(lr_variable.numpy()), plateaued))

    def _epoch_batches(self, epoch: int):
        """(the epoch's distributed batches from the resume position, batches in the epoch, the
        position)."""
        config = self.config
        dataset = self.task.train_batches(epoch)
        num_batches = int(dataset.cardinality())
        if config.steps_per_epoch:
            num_batches = (
                min(num_batches, config.steps_per_epoch) if num_batches > 0 else config.steps_per_epoch
            )
            dataset = dataset.take(num_batches)
        start_step = int(self.progress["step_in_epoch"])
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        dataset = dataset.skip(start_step).with_options(options)
        return self.strategy.experimental_distribute_dataset(dataset), num_batches, start_step

    def _progress_bar(self, epoch: int, num_batches: int, start_step: int):
        return tqdm(
            total=num_batches,
            initial=start_step,
            desc=f"epoch {epoch + 1}/{self.config.epochs}",
            disable=not self.show_progress,
            dynamic_ncols=True,
            unit="batch",
            mininterval=progress_interval(),
        )

    def _check_finite(self, loss_sum: float, epoch: int, step: int, bar) -> None:
        """The NaN guard: stop without saving when the loss is not finite."""
        if math.isfinite(loss_sum):
            return
        bar.close()
        last = self.manager.latest_checkpoint or "none yet"
        raise TrainingDivergedError(
            f"the training loss became {loss_sum} at epoch {epoch + 1}, step {step}; stopped without "
            f"saving. Last good checkpoint: {last}. Lower --learning-rate or set --clip-norm, then "
            "--resume."
        )

    def _report_step(self, bar, writer, step: int, loss: float, grad_norm, rate: float) -> None:
        """The progress bar's figures, and TensorBoard's every ``log_every`` steps."""
        metric = self.task.train_metric(loss)
        bar.set_postfix(
            loss=f"{loss:.3f}",
            **({self.task.metric: f"{metric:.3f}"} if metric is not None else {}),
            tok_s=f"{rate:,.0f}",
        )
        bar.update(1)
        if writer is not None and step % self.config.log_every == 0:
            with writer.as_default(step=step):
                tf.summary.scalar("train/loss", loss)
                tf.summary.scalar("train/grad_norm", grad_norm)
                tf.summary.scalar("train/tokens_per_second", rate)

    def _save(self, carry, step: int, totals: EpochTotals) -> None:
        """A checkpoint of the exact position: weights, optimizer, progress, carried state."""
        self._store_carry(carry)
        totals.store(self.progress)
        self.manager.save(checkpoint_number=step)

    def _end_epoch(self, epoch: int, totals: EpochTotals, seconds: float, writer) -> dict:
        """Validation, the best weights, early-stopping counters, the epoch's record and checkpoint."""
        task = self.task
        validation = task.evaluate(self.model, "validation")
        improved = validation[task.metric] < float(self.progress["best"])
        if improved:
            self.progress["best"].assign(validation[task.metric])
            self.progress["bad_epochs"].assign(0)
            self.best.save(checkpoint_number=epoch + 1)
        else:
            self.progress["bad_epochs"].assign_add(1)
        notes = task.end_of_epoch(validation)
        if notes.pop("reset_best", False):
            self.progress["best"].assign(math.inf)
            self.progress["bad_epochs"].assign(0)
        mean_loss = totals.loss / max(totals.count, 1.0)
        steps_run = totals.steps
        record = {
            "epoch": epoch,
            "train_loss": mean_loss,
            "train_metric": task.train_metric(mean_loss),
            "validation": validation,
            "learning_rate": float(self.optimizer.learning_rate.numpy()),
            "improved": bool(improved),
            "seconds": seconds,
            "tokens_per_second": steps_run * task.tokens_per_batch() / seconds if steps_run else None,
            **notes,
        }
        if writer is not None:
            with writer.as_default(step=epoch + 1):
                for name, number in validation.items():
                    if isinstance(number, int | float):
                        tf.summary.scalar(f"validation/{name}", number)
                tf.summary.scalar("learning_rate", record["learning_rate"])
        if self.show_progress:
            shown = ", ".join(f"{k} {v:.4f}" for k, v in validation.items() if isinstance(v, float))
            print(f"epoch {epoch + 1}: train loss {mean_loss:.4f}; validation {shown}", flush=True)
        self.progress["epoch"].assign(epoch + 1)
        self.progress["step_in_epoch"].assign(0)
        self.manager.save(checkpoint_number=int(self.progress["global_step"]))
        return record

    def _save_position(self, carry, step: int, totals: EpochTotals) -> None:
        """A multi-worker run's checkpoint after a SIGTERM (every worker, at the same step)."""
        self._save(carry, step, totals)
        self._stopped_at += f" (checkpoint {self.run_dir / 'checkpoints' / f'ckpt-{step}'})"

    def _exit_preempted(self):
        """What TensorFlow's handler calls once every worker saved: stop as a signalled run does."""
        raise StoppedBySignalError(
            f"stopped on SIGTERM to a worker {self._stopped_at}: every worker saved the exact position; "
            f"continue by starting every worker again with: zoneout train {self.config.task} "
            f"--run-dir {self.run_dir} --resume",
            signal.SIGTERM,
        )

    def _interrupt(self, where: str):
        """Raise ``StoppedBySignalError`` once the position is checkpointed (the caller saved it)."""
        raise StoppedBySignalError(
            f"stopped on {self._stop.requested} {where}: checkpoint {self.manager.latest_checkpoint} holds "
            f"the exact position; continue with: zoneout train {self.config.task} --run-dir {self.run_dir} "
            "--resume",
            self._stop.number,
        )

    def _write_metrics(self, history, final):
        if not self.chief:
            return
        run_files.write_json(
            self.run_dir / "metrics.json", {"epochs": history, **({"final": final} if final else {})}
        )
        if history and (final is not None or time.monotonic() - self._last_plot >= PLOT_EVERY_SECONDS):
            self._last_plot = time.monotonic()
            run_files.plot_learning_curve(
                history,
                self.task.metric,
                self.run_dir / "learning_curve.png",
                f"{self.config.task} ({self.config.preset}): {self.config.cell} {self.config.units}, "
                f"z_c={self.config.zoneout_cells} z_h={self.config.zoneout_states}",
            )

    def restore_final(self):
        """Rebuild a finished run's model (``self.model``) with the weights it was tested and
        exported with: the best validation checkpoint, else the last one. Trains nothing.

        Raises:
            RunFolderError: the Trainer was not created with ``resume=True``.
        """
        if not self.resume:
            raise RunFolderError("restore_final reads a finished run: create the Trainer with resume=True")
        self._build()
        self.manager.restore_or_initialize()
        self._restore_best()
        return self.model

    def _restore_best(self):
        if self.best.latest_checkpoint:
            self.best.checkpoint.restore(self.best.latest_checkpoint).expect_partial()

    def _finish(self, history, stopped_early: bool) -> dict:
        self._restore_best()
        test = self.task.evaluate(self.model, "test")
        final = {
            "test": test,
            "best_validation": float(self.progress["best"]),
            "epochs_run": len(history),
            "stopped_early": stopped_early,
            "weights_sha256": weights_digest(self.model),
        }
        # Every process says which weights it ends with: a cluster's workers must agree.
        print(f"{self.topology.name}: final weights sha256 {final['weights_sha256']}", flush=True)
        if self.chief:
            self._write_metrics(history, final)
            metadata = {
                "task": self.config.task,
                "config": json.loads(self.config.to_json()),
                "metrics": {"test": test, "best_validation": final["best_validation"]},
            }
            self.task.export(self.model, self.run_dir / "export", metadata)
            print(f"test: {', '.join(f'{k} {v:.4f}' for k, v in test.items() if isinstance(v, float))}")
            print(f"run folder: {self.run_dir}")
        return final
