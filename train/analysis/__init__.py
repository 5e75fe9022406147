"""The paper's analysis experiments: gradient propagation and semantic consistency."""

from __future__ import annotations


def run(config, run_dir, tfds_dir=None, resume=False) -> dict:
    """Run the analysis task named by ``config.task``; returns its summary (also in run_dir)."""
    if config.task == "gradient_propagation":
        from tf_zoneout_train.analysis import gradient_propagation

        return gradient_propagation.run(config, run_dir, tfds_dir, resume)
    from tf_zoneout_train.analysis import semantic_consistency

    return semantic_consistency.run(config, run_dir, resume)
