"""One module per experiment; ``get(config)`` returns the task object the training loop runs."""

from __future__ import annotations

from tf_zoneout_train.config import RunConfig
from tf_zoneout_train.task_registry import TaskFamily, task_info


def get(config: RunConfig, tfds_dir=None, data_dir=None):
    """The Task for ``config.task``, its module imported only now (each pulls in its own data code).

    Args:
        config: the run's configuration.
        tfds_dir: the prepared TFDS data folder (default ``~/tensorflow_datasets``).
        data_dir: the raw data files, laid out like shared/data (default ``$ZONEOUT_DATA_DIR``,
            else download).

    Raises:
        ValueError: ``config.task`` is an analysis task, run by ``tf_zoneout_train.analysis``.
    """
    info = task_info(config.task)
    if info.family is TaskFamily.ANALYSIS:
        raise ValueError(f"{config.task} is an analysis task; run it with tf_zoneout_train.analysis")
    return info.load()(config, tfds_dir=tfds_dir, data_dir=data_dir)
