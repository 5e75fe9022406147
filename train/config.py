"""Run configuration: one flat dataclass, presets as plain data, ``--flag value`` overrides.

Probabilities: ``zoneout_*`` are probabilities of KEEPING
the previous value; every dropout-like field (``dropout``, ``input_gate_dropout``,
``variational_*``) is a probability of DROPPING.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path

from tf_zoneout.models.recurrent import CELL_TYPES, INITIALIZATIONS, RecurrentSpec, check_spec
from tf_zoneout_train.task_registry import TASK_NAMES, TaskFamily, names_of

TASKS = TASK_NAMES  # their home is task_registry
PRESETS = (
    "paper",
    "cpu",
    "smoke",
    "demo",
    "small",
)  # demo: char_ptb only (`make demo`); small: word_ptb only
OPTIMIZERS = ("adam", "sgd", "rmsprop")
LR_SCHEDULES = ("constant", "zaremba", "exponential", "plateau")
# token_mean: cross-entropy averaged over every predicted token. sum_over_time: summed over the
# time steps and averaged over the batch (Zaremba et al.), so gradients are seq_len times larger;
# their learning rates and clipping thresholds assume it. Reported metrics are per token either way.
LOSS_REDUCTIONS = ("token_mean", "sum_over_time")
LM_TASKS = names_of(TaskFamily.LANGUAGE_MODEL)
BATCHING = ("chunks", "contiguous")
STRATEGIES = ("default", "mirrored", "multi_worker")
# float32; Keras's mixed_bfloat16 policy (bfloat16 compute, float32 weights and loss): faster on CPUs
# with AMX or AVX512-BF16 (docs/BENCHMARKS.md), slower elsewhere; or mixed_float16, the usual GPU
# policy (float16 compute outside the recurrence, whose states and step math stay float32; dynamic
# loss scaling). The export is float32 either way.
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


class ConfigError(ValueError):
    """A bad task, preset, flag or value: raised before any work starts."""


@dataclasses.dataclass
class RunConfig:
    """Everything a run depends on. See docs/guide/training.md for each field."""

    task: str = "char_ptb"
    preset: str = "cpu"
    seed: int = 1
    # model
    cell: str = "lstm"
    num_layers: int = 1
    units: int = 1000
    embedding_dim: int = 128
    init: str = "orthogonal"
    init_scale: float = 0.04
    # zoneout (keep probabilities)
    zoneout_cells: float = 0.0
    zoneout_states: float = 0.0
    share_mask: bool = False
    static_mask: bool = False
    # baselines (drop probabilities / strengths)
    dropout: float = 0.0
    input_gate_dropout: float = 0.0
    output_gate_zoneout: bool = False
    weight_noise: float = 0.0
    norm_stabilizer: float = 0.0
    stochastic_depth: float = 0.0
    variational_input: float = 0.0
    variational_recurrent: float = 0.0
    # data
    seq_len: int = 100
    batch_size: int = 32
    batching: str = "chunks"
    train_fraction: float = 1.0
    eval_batches: int = 0
    # optimization
    optimizer: str = "adam"
    learning_rate: float = 0.002
    lr_schedule: str = "constant"
    lr_decay: float = 1.0
    lr_decay_start: int = 0
    momentum: float = 0.0
    rmsprop_rho: float = 0.9  # RMSProp's moving-average decay of squared gradients
    clip_norm: float = 1.0
    loss_reduction: str = "token_mean"
    epochs: int = 10
    steps_per_epoch: int = 0
    patience: int = 5
    # XLA for the whole training step (one replica), not the layers' own kernel choice
    # (RecurrentSpec.jit_compile); called jit_compile in the config.json of tf-zoneout <= 0.2.
    jit_compile_step: bool = False
    precision: str = "float32"
    # runtime
    strategy: str = "default"
    checkpoint_every: int = 500
    log_every: int = 20
    # pmnist
    permute: bool = True
    # seq2seq
    seq2seq_task: str = "addition"
    curriculum: bool = True
    curriculum_threshold: float = 0.10
    start_level: int = 2
    max_level: int = 5
    train_examples: int = 50_000
    eval_examples: int = 2_000
    # analysis tasks
    compare: str = "zoneout,recurrent_dropout,unregularized"

    def to_json(self) -> str:
        """The fields this run uses (see ``used_fields``) as a JSON object."""
        values = dataclasses.asdict(self)
        return json.dumps({name: values[name] for name in used_fields(self)}, indent=1, sort_keys=True)


# Fields only some runs read; every other field is read by every task.
_FIELDS_OF_TASKS = {
    ("batching", "loss_reduction", "dropout"): LM_TASKS,
    ("seq_len",): LM_TASKS + ("semantic_consistency",),
    ("permute",): ("pmnist", "gradient_propagation"),
    ("seq2seq_task", "curriculum", "curriculum_threshold", "start_level", "max_level"): ("seq2seq",),
    ("train_examples", "eval_examples"): ("seq2seq",),
    ("compare",): ("gradient_propagation", "semantic_consistency"),
}


def used_fields(config: RunConfig) -> list[str]:
    """Names of the fields ``config``'s task, optimizer and schedule read (the rest keep defaults)."""
    unused = {name for names, tasks in _FIELDS_OF_TASKS.items() if config.task not in tasks for name in names}
    if config.optimizer != "rmsprop":
        unused.add("rmsprop_rho")
    if config.optimizer == "adam":
        unused.add("momentum")
    if config.lr_schedule == "constant":
        unused |= {"lr_decay", "lr_decay_start"}
    elif config.lr_schedule != "zaremba":
        unused.add("lr_decay_start")
    return [f.name for f in dataclasses.fields(RunConfig) if f.name not in unused]


# Presets: per task a "base" (what every preset of the task shares) and each preset's differences
# from it. resolve() applies RunConfig defaults <- base <- preset <- --flags.
# Section numbers cite the paper (arXiv 1606.01305, ICLR 2017 version).
_SMOKE = dict(epochs=2, steps_per_epoch=5, eval_batches=3, checkpoint_every=4, log_every=2)
_ZAREMBA = dict(  # Zaremba et al. (2014): contiguous rows, SGD, uniform init, summed-over-time loss
    num_layers=2,
    batching="contiguous",
    init="uniform",
    optimizer="sgd",
    learning_rate=1.0,
    lr_schedule="zaremba",
    loss_reduction="sum_over_time",
    batch_size=20,
)
PRESET_VALUES: dict[str, dict[str, dict]] = {
    "char_ptb": {
        # 4.1.1: 1 x 1000 LSTM, sequences of 100, batch 32, Adam 0.002, clipping 1, orthogonal init.
        "base": dict(units=1000, seq_len=100, batch_size=32, learning_rate=0.002, clip_norm=1.0),
        # 4.1.1: best zoneout z_c=0.5, z_h=0.05; no epoch count given: train to convergence (the
        # authors' log has its best validation BPC after epoch 100), early stopping on validation.
        "paper": dict(zoneout_cells=0.5, zoneout_states=0.05, epochs=300, patience=10),
        "cpu": dict(
            units=256,
            embedding_dim=64,
            batch_size=64,
            zoneout_cells=0.5,
            zoneout_states=0.05,
            epochs=6,
            patience=3,
        ),
        # `make demo`: a few minutes on 2 cores. lr 0.01 and 256 units: 1.97 validation BPC after
        # the 600 steps (lr 0.003 and 128 units stayed at 2.69, and its samples were not words).
        "demo": dict(
            units=256,
            embedding_dim=32,
            batch_size=64,
            learning_rate=0.01,
            zoneout_cells=0.5,
            zoneout_states=0.05,
            epochs=2,
            steps_per_epoch=300,
            eval_batches=60,
        ),
        "smoke": dict(
            _SMOKE,
            units=32,
            embedding_dim=16,
            seq_len=20,
            batch_size=8,
            steps_per_epoch=6,
            train_fraction=0.01,
            zoneout_cells=0.5,
            zoneout_states=0.05,
        ),
    },
    "word_ptb": {
        "base": dict(_ZAREMBA),
        # 4.1.2: Zaremba's large model (2 x 1500, 35 steps, init 0.04, lr 1 for 14 epochs then /1.15,
        # clipping 10, 55 epochs, dropout 0.65) with zoneout z_c=0.25, z_h=0.025 on top.
        "paper": dict(
            units=1500,
            embedding_dim=1500,
            seq_len=35,
            init_scale=0.04,
            lr_decay=1 / 1.15,
            lr_decay_start=14,
            clip_norm=10.0,
            epochs=55,
            dropout=0.65,
            zoneout_cells=0.25,
            zoneout_states=0.025,
            patience=0,
        ),
        # Table 1's "Unregularized LSTM" row is Zaremba's small model (4.1.2): 2 x 200, 20 steps, init 0.1,
        # lr 1 for 4 epochs then halved each epoch, 13 epochs, clipping 5, no dropout, no early stopping.
        "small": dict(
            units=200,
            embedding_dim=200,
            seq_len=20,
            init_scale=0.1,
            lr_decay=0.5,
            lr_decay_start=4,
            clip_norm=5.0,
            epochs=13,
            patience=0,
        ),
        "cpu": dict(
            units=200,
            embedding_dim=200,
            seq_len=35,
            init_scale=0.1,
            lr_decay=0.5,
            lr_decay_start=4,
            clip_norm=5.0,
            epochs=6,
            dropout=0.2,
            zoneout_cells=0.25,
            zoneout_states=0.025,
            patience=3,
        ),
        "smoke": dict(
            _SMOKE,
            units=32,
            embedding_dim=32,
            seq_len=10,
            batch_size=4,
            init_scale=0.1,
            lr_decay=0.5,
            lr_decay_start=1,
            clip_norm=5.0,
            train_fraction=0.01,
            zoneout_cells=0.25,
            zoneout_states=0.025,
        ),
    },
    "text8": {
        # 4.2: 1 x 2000, orthogonal init, batch 128, Adam 0.001, sequences of 180, clipping 1.
        "base": dict(seq_len=180, learning_rate=0.001, clip_norm=1.0, zoneout_cells=0.5, zoneout_states=0.05),
        # 4.2, Fig. 4: zoneout z_c=0.5, z_h=0.05; early stopping on validation.
        "paper": dict(units=2000, batch_size=128, epochs=100, patience=5),
        "cpu": dict(
            units=256,
            embedding_dim=64,
            batch_size=64,
            learning_rate=0.002,
            epochs=1,
            steps_per_epoch=2000,
            eval_batches=200,
        ),
        "smoke": dict(_SMOKE, units=32, embedding_dim=16, seq_len=20, batch_size=4),
    },
    "pmnist": {
        # 4.3: 100 units, batch 100, RMSProp lr 0.001 with "a decay rate of 0.5 for the moving average of
        # gradient norms" (rho=0.5, not a learning-rate decay), clipping 1, z_c = z_h = 0.15.
        "base": dict(
            units=100,
            batch_size=100,
            optimizer="rmsprop",
            rmsprop_rho=0.5,
            learning_rate=0.001,
            clip_norm=1.0,
            zoneout_cells=0.15,
            zoneout_states=0.15,
        ),
        # 4.3: 150 epochs at a constant learning rate, no early stopping.
        "paper": dict(epochs=150, patience=0),
        "cpu": dict(epochs=2, steps_per_epoch=150, eval_batches=20),
        "smoke": dict(
            _SMOKE,
            units=16,
            batch_size=8,
            steps_per_epoch=3,
            eval_batches=2,
            train_fraction=0.01,
            checkpoint_every=2,
            log_every=1,
        ),
    },
    "seq2seq": {
        # The paper gives no settings for the toy task; these are the original code's: 2 x 128 enc.-decoder,
        # Adam 0.01, batch 32, uniform init 0.08, no clipping, lr x0.95 when validation error rises at the
        # last curriculum level, z_c = 0.05.
        "base": dict(
            num_layers=2,
            units=128,
            embedding_dim=32,
            batch_size=32,
            init="uniform",
            init_scale=0.08,
            learning_rate=0.01,
            clip_norm=0.0,
            lr_schedule="plateau",
            lr_decay=0.95,
            zoneout_cells=0.05,
        ),
        "paper": dict(epochs=100, patience=100, train_examples=50_000, eval_examples=2_000),
        "cpu": dict(epochs=20, patience=20, train_examples=20_000, eval_examples=1_000),
        "smoke": dict(
            _SMOKE,
            units=16,
            embedding_dim=8,
            batch_size=16,
            steps_per_epoch=4,
            train_examples=200,
            eval_examples=32,
            checkpoint_every=3,
            log_every=1,
        ),
    },
    "gradient_propagation": {
        # 4.4, Fig. 6: gradient norms per time step after one epoch of pMNIST training (as in 4.3).
        "base": dict(
            units=100, batch_size=100, optimizer="rmsprop", rmsprop_rho=0.5, learning_rate=0.001, epochs=1
        ),
        "paper": dict(),
        "cpu": dict(steps_per_epoch=100),
        "smoke": dict(
            units=8, batch_size=8, steps_per_epoch=2, train_fraction=0.01, eval_batches=1, log_every=1
        ),
    },
    "semantic_consistency": {
        # Toy of the original code (no section): a linear 2-unit RNN trained so that h_10 matches h_0.
        "base": dict(
            units=2,
            batch_size=32,
            learning_rate=0.01,
            seq_len=10,
            epochs=20,
            steps_per_epoch=100,
            clip_norm=0.0,
            compare="0,0.1,0.9",
        ),
        "paper": dict(),
        "cpu": dict(),
        "smoke": dict(batch_size=8, epochs=2, steps_per_epoch=5, log_every=1),
    },
}
# The analysis tasks compare several models; these fields name what they compare.
_FIELDS = {f.name: f for f in dataclasses.fields(RunConfig)}
_CHOICES = {
    "task": TASKS,
    "preset": PRESETS,
    "cell": CELL_TYPES,
    "init": INITIALIZATIONS,
    "optimizer": OPTIMIZERS,
    "lr_schedule": LR_SCHEDULES,
    "batching": BATCHING,
    "strategy": STRATEGIES,
    "precision": PRECISIONS,
    "loss_reduction": LOSS_REDUCTIONS,
    "seq2seq_task": ("addition", "program"),
}
_PROBABILITIES = (
    "zoneout_cells",
    "zoneout_states",
    "dropout",
    "input_gate_dropout",
    "stochastic_depth",
    "variational_input",
    "variational_recurrent",
    "curriculum_threshold",
    "train_fraction",
)
_POSITIVE = (
    "num_layers",
    "units",
    "embedding_dim",
    "seq_len",
    "batch_size",
    "epochs",
    "checkpoint_every",
    "log_every",
    "start_level",
    "max_level",
    "train_examples",
    "eval_examples",
)
_NON_NEGATIVE = (
    "learning_rate",
    "clip_norm",
    "weight_noise",
    "norm_stabilizer",
    "steps_per_epoch",
    "patience",
    "eval_batches",
    "lr_decay",
    "lr_decay_start",
    "momentum",
    "init_scale",
)
_UNIT_INTERVAL = ("rmsprop_rho",)


def _parse_value(name: str, text: str):
    kind = typing.get_type_hints(RunConfig)[name]
    try:
        if kind is bool:
            lowered = text.lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return lowered in ("true", "1", "yes")
        return kind(text)
    except ValueError:
        raise ConfigError(f"--{name.replace('_', '-')}: {text!r} is not a valid {kind.__name__}") from None


def parse_overrides(args: list[str]) -> dict:
    """``["--zoneout-cells", "0.5", "--share-mask=true"]`` -> {"zoneout_cells": 0.5, "share_mask": True}."""
    overrides = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--"):
            raise ConfigError(f"unexpected argument {arg!r}; flags look like --units 256")
        name, _, value = arg[2:].partition("=")
        name = name.replace("-", "_")
        if name not in _FIELDS or name in ("task", "preset"):
            close = [f for f in _FIELDS if name.split("_")[0] in f][:5]
            hint = f" (did you mean {', '.join('--' + c.replace('_', '-') for c in close)}?)" if close else ""
            raise ConfigError(
                f"unknown flag --{name.replace('_', '-')}{hint}; `zoneout train --help` lists them"
            )
        if not value:
            if i + 1 >= len(args):
                raise ConfigError(f"--{name.replace('_', '-')} needs a value")
            value = args[i + 1]
            i += 1
        overrides[name] = _parse_value(name, value)
        i += 1
    return overrides


def validate(config: RunConfig) -> RunConfig:
    """Raise ConfigError naming the first bad field; return ``config`` otherwise."""
    for name, choices in _CHOICES.items():
        if getattr(config, name) not in choices:
            raise ConfigError(f"{name}={getattr(config, name)!r} is not one of {', '.join(choices)}")
    for name in _PROBABILITIES:
        value = getattr(config, name)
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"{name}={value} must be a probability in [0, 1]")
    for name in _UNIT_INTERVAL:
        if not 0.0 <= getattr(config, name) < 1.0:
            raise ConfigError(f"{name}={getattr(config, name)} must be in [0, 1)")
    for name in _POSITIVE:
        if getattr(config, name) <= 0:
            raise ConfigError(f"{name}={getattr(config, name)} must be positive")
    for name in _NON_NEGATIVE:
        if getattr(config, name) < 0:
            raise ConfigError(f"{name}={getattr(config, name)} must be >= 0")
    try:
        check_spec(recurrent_spec(config))
    except ValueError as error:
        raise ConfigError(str(error)) from None
    if config.loss_reduction == "sum_over_time" and config.task not in LM_TASKS:
        raise ConfigError(
            f"loss_reduction=sum_over_time is for the language-model tasks ({', '.join(LM_TASKS)}), "
            f"not {config.task}: use token_mean"
        )
    if config.train_fraction == 0:
        raise ConfigError("train_fraction must be > 0")
    if config.start_level > config.max_level:
        raise ConfigError(f"start_level={config.start_level} is above max_level={config.max_level}")
    if config.seq2seq_task == "addition" and config.max_level > 5:
        raise ConfigError("the addition task pads numbers to at most 5 digits: --max-level must be <= 5")
    return config


def recurrent_spec(
    config: RunConfig, max_timesteps: int = 1000, jit_compile: bool | str = "auto"
) -> RecurrentSpec:
    """The recurrent layers' description from a run configuration: the one configuration-to-layer
    mapping (fields of the same name, and the two variational fields as one pair). The run's own
    ``jit_compile_step`` is about the whole training step; the layers get ``jit_compile``."""
    spec_fields = {f.name for f in dataclasses.fields(RecurrentSpec)}
    shared = spec_fields & {f.name for f in dataclasses.fields(RunConfig)}
    return RecurrentSpec(
        **{name: getattr(config, name) for name in shared},
        variational_dropout=(config.variational_input, config.variational_recurrent),
        max_timesteps=max_timesteps,
        jit_compile=jit_compile,
    )


def resolve(task: str, preset: str = "cpu", overrides: dict | None = None) -> RunConfig:
    """The configuration of ``task`` under ``preset`` with ``overrides`` applied, validated."""
    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; choose from {', '.join(TASKS)}")
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    if preset not in PRESET_VALUES[task] or preset == "base":
        defined = ", ".join(p for p in PRESET_VALUES[task] if p != "base")
        raise ConfigError(f"preset {preset!r} is not defined for {task}; choose from {defined}")
    values = {**PRESET_VALUES[task]["base"], **PRESET_VALUES[task][preset], **(overrides or {})}
    unknown = set(values) - set(_FIELDS)
    if unknown:
        raise ConfigError(f"unknown field(s) {sorted(unknown)}")
    return validate(RunConfig(task=task, preset=preset, **values))


# What ``--resume`` may change: how long the run goes on and how it stops, checkpoints and logs;
# never the model, the data or the optimizer.
RESUMABLE_FIELDS = ("epochs", "patience", "steps_per_epoch", "checkpoint_every", "log_every")
RESUMES_KEY = "resumes"  # config.json's record of each --resume (not a configuration field)


def load(run_dir: str | Path) -> RunConfig:
    """The configuration saved in a run folder.

    Raises:
        ConfigError: there is no config.json, or it is damaged or holds no valid configuration.
    """
    from tf_zoneout_train import run_files

    path = Path(run_dir) / "config.json"
    if not path.exists():
        raise ConfigError(f"{run_dir} holds no run (no config.json)")
    try:
        data = run_files.read_json(path)
    except run_files.DamagedFileError as error:
        raise ConfigError(str(error)) from None
    fields = {k: v for k, v in data.items() if k != RESUMES_KEY} if isinstance(data, dict) else None
    if fields is not None and "jit_compile" in fields:  # the field's name in tf-zoneout <= 0.2
        fields["jit_compile_step"] = fields.pop("jit_compile")
    try:
        return validate(RunConfig(**fields))
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{path} is damaged (it holds no valid configuration: {error}); "
                          f"{run_files.FIXES['config.json']}") from None  # fmt: skip


def flag_help() -> str:
    """One line per field: ``--name (type, default)``, for --help."""
    return "\n".join(
        f"  --{f.name.replace('_', '-'):24s} {typing.get_type_hints(RunConfig)[f.name].__name__:6s} "
        f"(default {f.default!r})"
        for f in dataclasses.fields(RunConfig)
        if f.name not in ("task", "preset")
    )
