"""Overlay the learning curves of several runs.

    python -m tf_zoneout_train.compare_runs RUN... --out F.png

Also writes F.json with each run's configuration summary, per-epoch metrics and test metrics.
``--reference "paper, valid=120.7"`` draws a published number as a horizontal line beside the curves.
Unfinished runs (no test metrics yet) are plotted with ``--partial`` and marked as such.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tf_zoneout_train import run_files
from tf_zoneout_train.task_registry import task_info

# Regularizers named in a run's label when set: (config field, short name).
REGULARIZERS = (
    ("zoneout_cells", "z_c"),
    ("zoneout_states", "z_h"),
    ("dropout", "dropout"),
    ("input_gate_dropout", "recurrent dropout"),
    ("weight_noise", "weight noise"),
    ("norm_stabilizer", "norm stabilizer"),
    ("stochastic_depth", "stochastic depth"),
)


def label_of(config: dict) -> str:
    """e.g. "z_c=0.5, z_h=0.05 (seed 1)" or "unregularized (seed 2)"."""
    parts = [f"{short}={config[field]:g}" for field, short in REGULARIZERS if config.get(field)]
    return f"{', '.join(parts) or 'unregularized'} (seed {config.get('seed', 1)})"


def summary(run_dir: Path, partial: bool = False) -> dict:
    """A run's label, metric name, per-epoch curves and final test metrics (None while unfinished)."""
    config = run_files.read_json(run_dir / "config.json", None)
    metrics = run_files.read_json(run_dir / "metrics.json", None)
    finished = metrics is not None and "final" in (metrics or {})
    if config is None or metrics is None or not (finished or partial):
        raise SystemExit(
            f"{run_dir} is not a finished run (config.json / metrics.json with final results); "
            "--partial plots unfinished runs too"
        )
    metric = task_info(config["task"]).metric
    return {
        "run": str(run_dir),
        "label": label_of(config) + ("" if finished else f" [unfinished: {len(metrics['epochs'])} epochs]"),
        "config": config,
        "metric": metric,
        "train_loss": [e["train_loss"] for e in metrics["epochs"]],
        "train_metric": [e["train_metric"] for e in metrics["epochs"]],
        "validation": [e["validation"][metric] for e in metrics["epochs"]],
        "validation_fresh_state": [e["validation"].get(f"{metric}_fresh_state") for e in metrics["epochs"]],
        "test": metrics["final"]["test"] if finished else None,
        "best_validation": metrics["final"]["best_validation"] if finished else None,
        "seconds": sum(e["seconds"] for e in metrics["epochs"]),
    }


def parse_reference(text: str) -> tuple[str, float]:
    """ "paper unregularized, valid=120.7" -> ("paper unregularized, valid", 120.7)."""
    name, _, value = text.rpartition("=")
    try:
        return name.strip(), float(value)
    except ValueError:
        raise SystemExit(f"--reference takes 'NAME=VALUE', e.g. 'paper, valid=120.7'; got {text!r}") from None


def plot(runs: list[dict], path: Path, title: str, references=(), ylim=None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(9.5, 4.2))
    for k, run in enumerate(runs):
        epochs = range(1, len(run["validation"]) + 1)
        ax.plot(epochs, run["train_metric"], "--", color=f"C{k}", label=f"{run['label']} (train)")
        ax.plot(epochs, run["validation"], "o-", color=f"C{k}", label=f"{run['label']} (validation)")
    for k, (name, value) in enumerate(references):
        ax.axhline(value, color="black", linestyle=[":", "-.", "--"][k % 3], linewidth=1, label=name)
    if ylim:
        ax.set_ylim(*ylim)
    ax.set(xlabel="epoch", ylabel=runs[0]["metric"], title=title)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the curves, not on them
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m tf_zoneout_train.compare_runs``."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True, help="PNG to write (JSON beside it)")
    parser.add_argument("--title", default="learning curves")
    parser.add_argument("--reference", action="append", default=[], help="'NAME=VALUE': a published number")
    parser.add_argument("--partial", action="store_true", help="also plot unfinished runs")
    parser.add_argument("--ylim", type=float, nargs=2, help="y-axis range")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    runs = [summary(r, args.partial) for r in args.runs]
    references = [parse_reference(r) for r in args.reference]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    plot(runs, args.out, args.title, references, args.ylim)
    run_files.write_json(
        args.out.with_suffix(".json"),
        {
            "runs": runs,
            "references": dict(references),
            "command": " ".join(
                ["python -m tf_zoneout_train.compare_runs", *(sys.argv[1:] if argv is None else argv)]
            ),
        },
    )
    print(f"wrote {args.out} and {args.out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
