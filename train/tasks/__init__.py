"""One module per experiment; ``get(config)`` returns the task object the training loop runs."""

from __future__ import annotations

from tf_zoneout_train.config import RunConfig


def get(config: RunConfig, tfds_dir=None):
    """The Task for ``config.task`` (imported lazily: each pulls in its own data code)."""
    if config.task in ("char_ptb", "word_ptb", "text8"):
        from tf_zoneout_train.tasks.language_modeling import LanguageModelingTask

        return LanguageModelingTask(config, tfds_dir)
    if config.task == "pmnist":
        from tf_zoneout_train.tasks.pmnist import PmnistTask

        return PmnistTask(config, tfds_dir)
    if config.task == "seq2seq":
        from tf_zoneout_train.tasks.seq2seq import Seq2SeqTask

        return Seq2SeqTask(config)
    raise ValueError(f"{config.task} is an analysis task; run it with train.analysis")
