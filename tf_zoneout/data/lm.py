"""Language-model input pipelines: token streams, contiguous batches, and the original chunked mode.

Two ways to cut a token stream into training batches, both deterministic:

- ``contiguous_batches``: the stream is split into B parallel streams, each cut into
  consecutive windows of T, so that row b of batch i+1 continues row b of batch i and
  the RNN state can be carried across batches (truncated BPTT).
- ``chunk_batches``: the original zoneout code's mode: a random offset, chunks of T
  tokens (+1 for the target), shuffled; every chunk starts from a fresh state.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np
import tensorflow as tf

from tf_zoneout.data import vocab as vocab_lib
from tf_zoneout.data.builders_common import prepared_builder
from tf_zoneout.data.sources import DataError

LM_DATASETS = ("ptb_char", "ptb_word", "text8")


_READ_BATCH = 16384  # examples per tensor when reading a split: one Python step per batch, not per line
# Token streams are cached beside the prepared TFDS data (``<dataset>/<version>/<_CACHE_DIR>/``):
# reading and tokenizing char-PTB's training split costs 5-8 s of Python per run otherwise.
# Bump the suffix when tokenization changes, so stale caches are never read.
_CACHE_DIR = "tf_zoneout_tokens_v1"


def split_texts(dataset: str, split: str, tfds_dir=None, data_dir=None) -> list[str]:
    """The ``text`` of every example of a prepared TFDS split, in order.

    Args:
        dataset: "ptb_char", "ptb_word" or "text8".
        split: "train", "validation" or "test".
        tfds_dir: as for ``builders_common.prepared_builder``.
        data_dir: as for ``builders_common.prepared_builder``.

    Read in batches of ``_READ_BATCH`` lines: iterating example by example costs about
    0.3 ms of Python per line (15 s for char-PTB's 42k training lines on a busy core)."""
    ds = prepared_builder(dataset, tfds_dir, data_dir).as_dataset(split=split, shuffle_files=False)
    texts: list[str] = []
    for batch in ds.map(lambda ex: ex["text"]).batch(_READ_BATCH):
        texts.extend(t.decode("utf-8") for t in batch.numpy())
    return texts


def _cache_folder(dataset: str, tfds_dir=None, data_dir=None) -> Path | None:
    """Where this data set's derived token files live, or None if its TFDS folder is not local."""
    folder = Path(os.fspath(prepared_builder(dataset, tfds_dir, data_dir).data_dir))
    return folder / _CACHE_DIR if folder.is_dir() else None


def _write_atomically(path: Path, write) -> None:
    """``write(file)`` into a temporary file renamed to ``path``: a reader never sees half a file.
    A folder that cannot be written (read-only data) just means no cache."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as handle:
            write(handle)
        tmp.replace(path)
    except OSError:
        tmp.unlink(missing_ok=True)


def load_vocabulary(dataset: str, tfds_dir=None, data_dir=None) -> vocab_lib.Vocabulary:
    """The data set's vocabulary, built from its training split (once; then read from the cache).

    Args:
        dataset: "ptb_char", "ptb_word" or "text8".
        tfds_dir: as for ``builders_common.prepared_builder``.
        data_dir: as for ``builders_common.prepared_builder``.
    """
    cache = _cache_folder(dataset, tfds_dir, data_dir)
    cached = cache / "vocabulary.json" if cache else None
    if cached and cached.is_file():
        with contextlib.suppress(OSError, ValueError, KeyError):  # unreadable: rebuild it
            return vocab_lib.Vocabulary.load(cached)
    texts = split_texts(dataset, "train", tfds_dir, data_dir) if dataset != "text8" else []
    vocabulary = vocab_lib.build_vocabulary(dataset, texts)
    if cached:
        _write_atomically(cached, lambda f: f.write(vocabulary.to_json().encode()))
    return vocabulary


def token_ids(
    dataset: str, split: str, vocabulary: vocab_lib.Vocabulary, tfds_dir=None, data_dir=None
) -> np.ndarray:
    """The whole split as one int32 id stream [N] (PTB: one end-of-line token per line).

    Cached per (split, vocabulary) beside the prepared data after the first call.

    Args:
        dataset: "ptb_char", "ptb_word" or "text8".
        split: "train", "validation" or "test".
        vocabulary: the ``Vocabulary`` to encode with (``load_vocabulary``).
        tfds_dir: as for ``builders_common.prepared_builder``.
        data_dir: as for ``builders_common.prepared_builder``.
    """
    cache = _cache_folder(dataset, tfds_dir, data_dir)
    cached = cache / f"ids-{split}-{vocabulary.digest()}.npy" if cache else None
    if cached and cached.is_file():
        with contextlib.suppress(OSError, ValueError):  # unreadable: rebuild it
            return np.load(cached)
    texts = split_texts(dataset, split, tfds_dir, data_dir)
    tokens = [t for text in texts for t in vocab_lib.tokenize(dataset, text)]
    ids = np.asarray(vocabulary.encode(tokens), np.int32)
    if cached:
        _write_atomically(cached, lambda f: np.save(f, ids))
    return ids


def contiguous_batches(ids: np.ndarray, batch_size: int, seq_len: int) -> tf.data.Dataset:
    """Batches (x [B, T], y [B, T]) for truncated BPTT with the state carried across batches.

    The stream is trimmed to B equal rows; batch i holds columns [i*T, (i+1)*T) of
    every row, and y is x shifted by one token. Covers each row once, in order.

    Args:
        ids: [N] token ids (``token_ids``).
        batch_size: B, the parallel streams.
        seq_len: T, the window.

    Raises:
        ValueError: ``batch_size`` or ``seq_len`` is not positive.
        DataError: the stream is too short for one batch.
    """
    if batch_size <= 0 or seq_len <= 0:
        raise ValueError(f"batch_size and seq_len must be positive; got {batch_size} and {seq_len}")
    row_len = len(ids) // batch_size
    num_batches = (row_len - 1) // seq_len
    if num_batches < 1:
        raise DataError(
            f"a stream of {len(ids)} tokens is too short for batch_size={batch_size}, seq_len={seq_len}"
        )
    rows = tf.constant(np.asarray(ids[: batch_size * row_len]).reshape(batch_size, row_len))

    def window(i):
        start = i * seq_len
        return rows[:, start : start + seq_len], rows[:, start + 1 : start + seq_len + 1]

    return (
        tf.data.Dataset.range(num_batches)
        .map(window, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )


def chunk_batches(
    ids: np.ndarray,
    batch_size: int,
    seq_len: int,
    seed: int | None = None,
    epoch: int = 0,
    drop_remainder: bool = True,
) -> tf.data.Dataset:
    """The original code's batches: chunks of T (+1) tokens, each from a fresh state.

    With a ``seed`` (training) the stream starts at a random offset in [0, T) and the
    chunks are shuffled, both drawn from (seed, epoch); without one (evaluation) the
    chunks are taken in order from offset 0 and the last partial batch is kept unless
    ``drop_remainder``.

    Args:
        ids: [N] token ids (``token_ids``).
        batch_size: chunks per batch.
        seq_len: T, tokens per chunk (plus one for the target).
        seed: the training run's seed, or None for evaluation.
        epoch: with ``seed``: the epoch, so each epoch has its own offset and order.
        drop_remainder: drop a last batch smaller than ``batch_size``.
    """
    if batch_size <= 0 or seq_len <= 0:
        raise ValueError(f"batch_size and seq_len must be positive; got {batch_size} and {seq_len}")
    rng = np.random.default_rng([seed, epoch]) if seed is not None else None
    offset = int(rng.integers(0, seq_len)) if rng is not None else 0
    num_chunks = (len(ids) - offset - 1) // seq_len
    starts = offset + seq_len * np.arange(num_chunks)
    if rng is not None:
        rng.shuffle(starts)
    windows = np.asarray(ids)[starts[:, None] + np.arange(seq_len + 1)[None, :]]
    ds = tf.data.Dataset.from_tensor_slices((windows[:, :-1], windows[:, 1:]))
    return ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)
