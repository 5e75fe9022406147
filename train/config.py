"""Run configuration: one flat dataclass, the presets (``presets.py``), ``--flag value`` overrides.

Probabilities: ``zoneout_*`` are probabilities of KEEPING
the previous value; every dropout-like field (``dropout``, ``input_gate_dropout``,
``variational_*``) is a probability of DROPPING.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path

from tf_zoneout.errors import ZoneoutError
from tf_zoneout.models.recurrent import CELL_TYPES, INITIALIZATIONS, RecurrentSpec, check_spec
from tf_zoneout_train import presets
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


class ConfigError(ZoneoutError, ValueError):
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
    # (RecurrentSpec.jit_compile).
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
    of_task = presets.PRESET_VALUES[task]
    if preset not in of_task or preset == "base":
        defined = ", ".join(p for p in of_task if p != "base")
        raise ConfigError(f"preset {preset!r} is not defined for {task}; choose from {defined}")
    values = {**of_task["base"], **of_task[preset], **(overrides or {})}
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
