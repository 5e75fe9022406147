"""TFDS builder for text8 (the first 10^8 bytes of cleaned English Wikipedia, Mahoney)."""

from __future__ import annotations

import tensorflow_datasets as tfds

from tf_zoneout.data.builders_common import read_text

PIECE_CHARS = 100_000
# The usual split of the 100,000,000 characters: 90M / 5M / 5M; on another length
# (the tests' small files) the same fractions.
SPLIT_FRACTIONS = {"train": (0.0, 0.9), "validation": (0.9, 0.95), "test": (0.95, 1.0)}


def split_bounds(length: int) -> dict[str, tuple[int, int]]:
    """Character ranges of the splits for a text of ``length`` characters."""
    return {name: (round(a * length), round(b * length)) for name, (a, b) in SPLIT_FRACTIONS.items()}


class Text8(tfds.core.GeneratorBasedBuilder):
    """text8: lower-case letters and spaces; consecutive pieces of 100,000 characters, in order."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "90M/5M/5M split, pieces of 100,000 characters."}

    def _info(self):
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({"text": tfds.features.Text()}),
            homepage="http://mattmahoney.net/dc/textdata.html",
            disable_shuffling=True,
        )

    def _split_generators(self, dl_manager):
        text = read_text("text8/text8", dl_manager)
        return {
            split: self._generate_examples(text[start:stop])
            for split, (start, stop) in split_bounds(len(text)).items()
        }

    def _generate_examples(self, text):
        for index, start in enumerate(range(0, len(text), PIECE_CHARS)):
            yield index, {"text": text[start : start + PIECE_CHARS]}
