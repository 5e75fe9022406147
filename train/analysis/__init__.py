"""The paper's analysis experiments: gradient propagation and semantic consistency."""

from __future__ import annotations

from tf_zoneout_train.task_registry import TaskFamily, task_info


def run(config, run_dir, tfds_dir=None, resume=False, data_dir=None) -> dict:
    """Run the analysis task named by ``config.task``; returns its summary (also written in run_dir).

    Raises:
        ValueError: ``config.task`` is not an analysis task (train it with ``tasks.get``).
    """
    info = task_info(config.task)
    if info.family is not TaskFamily.ANALYSIS:
        raise ValueError(f"{config.task} is not an analysis task; train it with tf_zoneout_train.tasks")
    return info.load()(config, run_dir, tfds_dir=tfds_dir, data_dir=data_dir, resume=resume)
