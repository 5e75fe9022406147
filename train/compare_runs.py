"""Overlay the learning curves of several runs: ``python -m train.compare_runs RUN... --out F.png``.

Also writes F.json with each run's configuration summary, per-epoch metrics and test metrics.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from train import run_files


def summary(run_dir: Path) -> dict:
    """A run's label, metric name, per-epoch curves and final test metrics."""
    config = run_files.read_json(run_dir / "config.json")
    metrics = run_files.read_json(run_dir / "metrics.json")
    if config is None or metrics is None or "final" not in metrics:
        raise SystemExit(f"{run_dir} is not a finished run (config.json / metrics.json with final results)")
    metric = {"word_ptb": "perplexity", "pmnist": "error", "seq2seq": "sequence_error"}.get(
        config["task"], "bpc"
    )
    label = f"z_c={config['zoneout_cells']:g}, z_h={config['zoneout_states']:g}"
    if not config["zoneout_cells"] and not config["zoneout_states"]:
        label = "unregularized"
    return {
        "run": str(run_dir),
        "label": label,
        "metric": metric,
        "train_loss": [e["train_loss"] for e in metrics["epochs"]],
        "train_metric": [e["train_metric"] for e in metrics["epochs"]],
        "validation": [e["validation"][metric] for e in metrics["epochs"]],
        "validation_fresh_state": [e["validation"].get(f"{metric}_fresh_state") for e in metrics["epochs"]],
        "test": metrics["final"]["test"],
        "seconds": sum(e["seconds"] for e in metrics["epochs"]),
    }


def plot(runs: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for k, run in enumerate(runs):
        epochs = range(1, len(run["validation"]) + 1)
        ax.plot(epochs, run["train_metric"], "--", color=f"C{k}", label=f"{run['label']} (train)")
        ax.plot(epochs, run["validation"], "o-", color=f"C{k}", label=f"{run['label']} (validation)")
    ax.set(xlabel="epoch", ylabel=runs[0]["metric"], title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True, help="PNG to write (JSON beside it)")
    parser.add_argument("--title", default="learning curves")
    args = parser.parse_args(argv)
    runs = [summary(r) for r in args.runs]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    plot(runs, args.out, args.title)
    run_files.write_json(args.out.with_suffix(".json"), {"runs": runs})
    print(f"wrote {args.out} and {args.out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
