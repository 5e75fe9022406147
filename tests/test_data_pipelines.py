"""Language-model, pMNIST and text8 pipelines: counts, batching, permutation."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds
from conftest import shared_data_dir

import tf_zoneout.data  # noqa: F401  (registers the builders)
from tf_zoneout.data import lm, pmnist, sources, wiki_text8
from tf_zoneout.data import vocab as vocab_lib

EXPECTED = {
    "ptb_char": {"train": 5_017_482, "validation": 393_042, "test": 442_423, "vocab": 50, "lines": 42_068},
    "ptb_word": {"train": 929_589, "validation": 73_760, "test": 82_430, "vocab": 10_000, "lines": 42_068},
}


@pytest.mark.parametrize("dataset", ["ptb_char", "ptb_word"])
def test_ptb_counts_match_sources(dataset, tfds_dir, tmp_path):
    shared_data_dir()
    vocabulary = lm.load_vocabulary(dataset, tfds_dir)
    assert len(vocabulary) == EXPECTED[dataset]["vocab"]
    builder = tfds.builder(dataset, data_dir=tfds_dir)
    assert builder.info.splits["train"].num_examples == EXPECTED[dataset]["lines"]
    for split in ("train", "validation", "test"):
        ids = lm.token_ids(dataset, split, vocabulary, tfds_dir)
        assert len(ids) == EXPECTED[dataset][split]
        assert np.sum(ids == vocabulary.index[vocabulary.eol]) == builder.info.splits[split].num_examples
    # The vocabulary round-trips through its file.
    assert vocab_lib.Vocabulary.load(vocabulary.save(tmp_path / "vocab.json")) == vocabulary


def test_ptb_lines_keep_file_order(tfds_dir):
    shared_data_dir()
    texts = lm.split_texts("ptb_word", "validation", tfds_dir)
    assert texts[0] == " consumers may want to move their telephones a little closer to the tv set "
    assert texts[1].startswith(" <unk> <unk> watching abc 's monday night football")


def test_contiguous_batches_cover_the_stream_once_in_order_with_carry_alignment():
    ids = np.arange(1000, dtype=np.int32)
    batches = list(lm.contiguous_batches(ids, batch_size=4, seq_len=7).as_numpy_iterator())
    row_len = 1000 // 4
    assert len(batches) == (row_len - 1) // 7
    xs = np.concatenate([x for x, _ in batches], axis=1)
    ys = np.concatenate([y for _, y in batches], axis=1)
    rows = ids[: 4 * row_len].reshape(4, row_len)
    np.testing.assert_array_equal(xs, rows[:, : xs.shape[1]])  # each row once, in order
    np.testing.assert_array_equal(ys, rows[:, 1 : xs.shape[1] + 1])  # targets = next token
    for (x1, _), (x2, _) in itertools.pairwise(batches):
        np.testing.assert_array_equal(x2[:, 0], x1[:, -1] + 1)  # row b continues row b


def test_chunk_batches_original_mode():
    ids = np.arange(5000, dtype=np.int32)
    first = list(lm.chunk_batches(ids, 8, 100, seed=1, epoch=0).as_numpy_iterator())
    again = list(lm.chunk_batches(ids, 8, 100, seed=1, epoch=0).as_numpy_iterator())
    other = list(lm.chunk_batches(ids, 8, 100, seed=1, epoch=1).as_numpy_iterator())
    for (x, y), (x2, _) in zip(first, again):
        np.testing.assert_array_equal(x, x2)
        np.testing.assert_array_equal(y, x + 1)
        assert np.all(np.diff(x, axis=1) == 1)  # each chunk is a contiguous piece of the stream
    starts = np.concatenate([x[:, 0] for x, _ in first])
    assert len(set(starts % 100)) == 1, "one offset per epoch"
    other_starts = np.concatenate([x[:, 0] for x, _ in other])
    assert not np.array_equal(starts, other_starts), "another epoch draws another offset and order"
    evaluation = list(lm.chunk_batches(ids, 8, 100, drop_remainder=False).as_numpy_iterator())
    eval_starts = np.concatenate([x[:, 0] for x, _ in evaluation])
    np.testing.assert_array_equal(eval_starts, np.arange(len(eval_starts)) * 100)


def test_pmnist_permutation_is_a_seeded_bijection():
    p = pmnist.permutation(42)
    assert sorted(p.tolist()) == list(range(784))
    np.testing.assert_array_equal(p, pmnist.permutation(42))
    assert not np.array_equal(p, pmnist.permutation(43))


def test_pmnist_pipeline(tfds_dir):
    shared_data_dir()
    builder = tfds.builder("zoneout_mnist", data_dir=tfds_dir)
    builder.download_and_prepare()
    assert {k: v.num_examples for k, v in builder.info.splits.items()} == {
        "train": 50_000,
        "validation": 10_000,
        "test": 10_000,
    }
    plain = next(iter(pmnist.pmnist_dataset("test", 16, permute_seed=None, tfds_dir=tfds_dir)))
    permuted = next(iter(pmnist.pmnist_dataset("test", 16, permute_seed=3, tfds_dir=tfds_dir)))
    x, y = (np.asarray(t) for t in plain)
    assert x.shape == (16, 784, 1) and x.dtype == np.float32 and x.min() >= 0 and x.max() <= 1
    np.testing.assert_array_equal(np.asarray(permuted[0])[:, :, 0], x[:, pmnist.permutation(3), 0])
    np.testing.assert_array_equal(np.asarray(permuted[1]), y)
    labels = np.concatenate(
        [np.asarray(b[1]) for b in pmnist.pmnist_dataset("test", 1000, tfds_dir=tfds_dir)]
    )
    counts = np.bincount(labels, minlength=10).tolist()
    assert counts == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_text8_on_a_small_file_in_its_format(small_text8):
    tfds_dir, text = small_text8
    bounds = wiki_text8.split_bounds(len(text))
    assert bounds == {"train": (0, 270_000), "validation": (270_000, 285_000), "test": (285_000, 300_000)}
    assert wiki_text8.split_bounds(100_000_000)["validation"] == (90_000_000, 95_000_000)
    vocabulary = lm.load_vocabulary("text8", tfds_dir)
    assert len(vocabulary) == 27
    pieces = lm.split_texts("text8", "train", tfds_dir)
    assert len(pieces) == 3 and "".join(pieces) == text[:270_000].decode()
    for split, (start, stop) in bounds.items():
        ids = lm.token_ids("text8", split, vocabulary, tfds_dir)
        assert len(ids) == stop - start
    # A corrupt copy is refused with the clear error.
    (Path(tfds_dir).parent / "text8" / "text8").write_bytes(text[:-1] + b"x")
    with pytest.raises(sources.DataError, match="text8"):
        sources.read("text8/text8")


def test_token_streams_are_cached_beside_the_prepared_data(small_text8, monkeypatch):
    tfds_dir, text = small_text8
    vocabulary = lm.load_vocabulary("text8", tfds_dir)
    first = lm.token_ids("text8", "validation", vocabulary, tfds_dir)
    cache = next(Path(tfds_dir).glob(f"text8/*/{lm._CACHE_DIR}"))
    # Only complete files: no temporary file is left behind.
    assert {p.name for p in cache.iterdir()} == {
        "vocabulary.json",
        f"ids-validation-{vocabulary.digest()}.npy",
    }
    assert "".join(vocabulary.tokens[i] for i in first) == text[270_000:285_000].decode()

    def no_reading(*args):
        raise AssertionError("the split was read again instead of the cache")

    monkeypatch.setattr(lm, "split_texts", no_reading)
    np.testing.assert_array_equal(lm.token_ids("text8", "validation", vocabulary, tfds_dir), first)
    assert lm.load_vocabulary("text8", tfds_dir) == vocabulary
    # Another vocabulary never reads this one's ids; a damaged file is rebuilt, not trusted.
    other = vocab_lib.Vocabulary("text8", vocabulary.tokens[::-1], None, None)
    with pytest.raises(AssertionError, match="read again"):
        lm.token_ids("text8", "validation", other, tfds_dir)
    monkeypatch.undo()
    (cache / f"ids-validation-{vocabulary.digest()}.npy").write_bytes(b"not an array")
    np.testing.assert_array_equal(lm.token_ids("text8", "validation", vocabulary, tfds_dir), first)


def test_the_data_folder_is_a_parameter_not_only_the_environment(small_text8, monkeypatch, tmp_path):
    """``data_dir`` reaches the builders as TFDS's manual_dir: no $ZONEOUT_DATA_DIR needed."""
    from tf_zoneout.data.builders_common import prepared_builder

    tfds_dir, text = small_text8
    raw_folder = Path(tfds_dir).parent
    monkeypatch.delenv(sources.DATA_DIR_ENV)
    monkeypatch.setenv("ZONEOUT_CACHE_DIR", str(tmp_path / "no-downloads"))
    monkeypatch.setattr(sources, "_download", lambda *a: pytest.fail("it downloaded instead"))
    with pytest.raises(sources.DataError, match="does not exist"):
        prepared_builder("text8", tfds_dir, raw_folder / "missing")
    vocabulary = lm.load_vocabulary("text8", tfds_dir, data_dir=raw_folder)
    ids = lm.token_ids("text8", "test", vocabulary, tfds_dir, data_dir=raw_folder)
    assert "".join(vocabulary.tokens[i] for i in ids) == text[285_000:].decode()
