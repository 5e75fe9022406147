"""``zoneout data download|verify|stats``: get, check and describe the data sets."""

from __future__ import annotations

import argparse

# tf_zoneout.data (TensorFlow Datasets: the "experiments" extra) is imported where it is used, so the
# `zoneout` command builds its parser without it.

DATASETS = ("ptb_char", "ptb_word", "text8", "zoneout_mnist")
_FILES = {
    "ptb_char": [f"ptb/ptb.char.{s}.txt" for s in ("train", "valid", "test")],
    "ptb_word": [f"ptb/ptb.{s}.txt" for s in ("train", "valid", "test")],
    "text8": ["text8/text8"],
    "zoneout_mnist": [
        f"mnist/{s}"
        for s in (
            "train-images-idx3-ubyte",
            "train-labels-idx1-ubyte",
            "t10k-images-idx3-ubyte",
            "t10k-labels-idx1-ubyte",
        )
    ],
}
# Token counts of the distributed files (one end-of-line per line), checked by `verify`.
EXPECTED_TOKENS = {
    "ptb/ptb.train.txt": 929_589,
    "ptb/ptb.valid.txt": 73_760,
    "ptb/ptb.test.txt": 82_430,
    "ptb/ptb.char.train.txt": 5_017_482,
    "ptb/ptb.char.valid.txt": 393_042,
    "ptb/ptb.char.test.txt": 442_423,
}


def count_tokens(path: str, content: bytes) -> int:
    """Tokens of a raw PTB file, one end-of-line token per line."""
    from tf_zoneout.data import vocab as vocab_lib
    from tf_zoneout.data.builders_common import lines_of

    dataset = "ptb_char" if ".char." in path else "ptb_word"
    return sum(len(vocab_lib.tokenize(dataset, line)) for line in lines_of(content.decode("utf-8")))


def verify(datasets, data_dir) -> list[str]:
    """Check every raw file's checksum (and PTB token counts); returns report lines. Raises DataError."""
    from tf_zoneout.data import sources

    report = []
    for dataset in datasets:
        for path in _FILES[dataset]:
            content = sources.read(path, data_dir)
            line = f"ok  {path}  {len(content):,} bytes"
            if path in EXPECTED_TOKENS:
                tokens = count_tokens(path, content)
                if tokens != EXPECTED_TOKENS[path]:
                    raise sources.DataError(f"{path}: {tokens:,} tokens, expected {EXPECTED_TOKENS[path]:,}")
                line += f", {tokens:,} tokens"
            report.append(line)
    return report


def download(datasets, data_dir, tfds_dir) -> list[str]:
    """Prepare the TFDS builders (reading, verifying or downloading the sources)."""
    import tf_zoneout.data  # noqa: F401  (registers the builders)
    from tf_zoneout.data.builders_common import prepared_builder

    report = []
    for dataset in datasets:
        builder = prepared_builder(dataset, tfds_dir, data_dir)
        report.append(f"ok  {dataset}  prepared in {builder.data_dir}")
    return report


STATS_HEADER = ("dataset", "split", "examples", "tokens", "vocabulary")


def format_table(rows) -> list[str]:
    """Left-aligned text table lines for a list of equal-length string tuples."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]


def stats(datasets, data_dir, tfds_dir) -> list[tuple[str, ...]]:
    """Rows of (data set, split, examples, tokens, vocabulary size)."""
    import tf_zoneout.data  # noqa: F401
    from tf_zoneout.data import lm
    from tf_zoneout.data.builders_common import prepared_builder

    rows = []
    for dataset in datasets:
        builder = prepared_builder(dataset, tfds_dir, data_dir)
        language = dataset in lm.LM_DATASETS
        vocabulary = lm.load_vocabulary(dataset, tfds_dir, data_dir) if language else None
        for split, info in builder.info.splits.items():
            if vocabulary is not None:
                tokens = f"{len(lm.token_ids(dataset, split, vocabulary, tfds_dir, data_dir)):,}"
                size = f"{len(vocabulary):,}"
            else:
                tokens, size = f"{info.num_examples * 784:,} pixels", "10 classes"
            rows.append((dataset, split, f"{info.num_examples:,}", tokens, size))
    return rows


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("data", help="download, verify and describe the data sets")
    parser.add_argument("action", choices=("download", "verify", "stats"))
    parser.add_argument(
        "datasets", nargs="*", metavar="DATASET", help=f"any of {', '.join(DATASETS)} (default: all)"
    )
    parser.add_argument(
        "--data-dir", default=None, help="folder laid out like shared/data (default $ZONEOUT_DATA_DIR)"
    )
    parser.add_argument("--tfds-dir", default=None, help="TFDS cache folder (default ~/tensorflow_datasets)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the action on each data set; with none named, on all, skipping missing ones."""
    from tf_zoneout.data import sources

    actions = {"verify": verify, "download": download, "stats": stats}
    extra = () if args.action == "verify" else (args.tfds_dir,)
    results, notes, failed = [], [], False
    for dataset in args.datasets or DATASETS:
        try:
            results.extend(actions[args.action]([dataset], args.data_dir, *extra))
        except sources.DataError as error:
            failed = failed or bool(args.datasets)
            notes.append(f"error: {error}" if args.datasets else f"skipped {dataset}: {error}")
    lines = format_table([STATS_HEADER, *results]) if args.action == "stats" and results else results
    print("\n".join([*lines, *notes]))
    return 2 if failed else 0
