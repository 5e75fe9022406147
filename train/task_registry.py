"""Every task ``zoneout train`` knows: its name, family, metric, data set and where its code lives.

This is the one list of tasks. The configuration (``config.TASKS``, the fields each task reads),
the command line (``zoneout train TASK``), the training loop's task factory (``tasks.get``), the
analysis runner and the run comparison all read it; a new task is one entry here, one preset in
``config.py`` and its module.

>>> names_of(TaskFamily.LANGUAGE_MODEL)
('char_ptb', 'word_ptb', 'text8')
>>> task_info("word_ptb").metric
'perplexity'
"""

from __future__ import annotations

import dataclasses
import enum
import importlib


class TaskFamily(enum.Enum):
    """How a task is run: by the training loop (with a Task object) or by an analysis script."""

    LANGUAGE_MODEL = "language_model"  # next-token models on a token stream (BPC or perplexity)
    CLASSIFIER = "classifier"  # a sequence in, a class out
    SEQ2SEQ = "seq2seq"  # an encoder-decoder
    ANALYSIS = "analysis"  # several training runs and a figure (train/analysis/)


@dataclasses.dataclass(frozen=True)
class TaskInfo:
    """One task.

    Attributes:
        name: the name ``zoneout train`` takes and config.json stores.
        family: how it is run (see ``TaskFamily``).
        metric: the reported metric (lower is better), a key of its evaluation results.
        summary: one line for help texts.
        entry: ``"module:attribute"`` of its Task class (``ANALYSIS``: its ``run`` function),
            imported only when the task runs, since each pulls in its own data code.
        dataset: the TFDS data set it reads, or None for generated data.
    """

    name: str
    family: TaskFamily
    metric: str
    summary: str
    entry: str
    dataset: str | None = None

    def load(self):
        """The Task class (analysis: the ``run`` function) named by ``entry``."""
        module, attribute = self.entry.split(":")
        return getattr(importlib.import_module(module), attribute)


_LM = "tf_zoneout_train.tasks.language_modeling:LanguageModelingTask"

TASKS: tuple[TaskInfo, ...] = (
    TaskInfo("char_ptb", TaskFamily.LANGUAGE_MODEL, "bpc", "character-level Penn Treebank", _LM, "ptb_char"),
    TaskInfo("word_ptb", TaskFamily.LANGUAGE_MODEL, "perplexity", "word-level PTB", _LM, "ptb_word"),
    TaskInfo("text8", TaskFamily.LANGUAGE_MODEL, "bpc", "text8 (100M characters of Wikipedia)", _LM, "text8"),
    TaskInfo(
        "pmnist",
        TaskFamily.CLASSIFIER,
        "error",
        "(permuted) sequential MNIST, pixel by pixel",
        "tf_zoneout_train.tasks.pmnist:PmnistTask",
        "zoneout_mnist",
    ),
    TaskInfo(
        "seq2seq",
        TaskFamily.SEQ2SEQ,
        "sequence_error",
        "the toy addition task (or learning to execute), with a curriculum",
        "tf_zoneout_train.tasks.seq2seq:Seq2SeqTask",
    ),
    TaskInfo(
        "gradient_propagation",
        TaskFamily.ANALYSIS,
        "error",
        "gradient norms through time on pMNIST, with and without zoneout (a figure)",
        "tf_zoneout_train.analysis.gradient_propagation:run",
        "zoneout_mnist",
    ),
    TaskInfo(
        "semantic_consistency",
        TaskFamily.ANALYSIS,
        "mse",
        "a linear RNN learning a rotation, per zoneout rate (a figure)",
        "tf_zoneout_train.analysis.semantic_consistency:run",
    ),
)

TASK_NAMES: tuple[str, ...] = tuple(task.name for task in TASKS)
_BY_NAME = {task.name: task for task in TASKS}


def task_info(name: str) -> TaskInfo:
    """The task called ``name``.

    Args:
        name: a task name (``TASK_NAMES``).

    Raises:
        KeyError: no such task (the message lists the known ones).
    """
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown task {name!r}; choose from {', '.join(TASK_NAMES)}") from None


def names_of(*families: TaskFamily) -> tuple[str, ...]:
    """The names of the tasks of these families, in registry order."""
    return tuple(task.name for task in TASKS if task.family in families)
