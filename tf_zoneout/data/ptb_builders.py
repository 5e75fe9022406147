"""TFDS builders for Mikolov's Penn Treebank, word level (ptb_word) and character level (ptb_char)."""

from __future__ import annotations

import tensorflow_datasets as tfds

from tf_zoneout.data.builders_common import lines_of, read_text

_CITATION = """@article{marcus1993building, title={Building a Large Annotated Corpus of English:
The Penn Treebank}, author={Marcus, Mitchell P. and Santorini, Beatrice and Marcinkiewicz,
Mary Ann}, journal={Computational Linguistics}, volume={19}, number={2}, year={1993}}"""

_SPLIT_FILES = {"train": "train", "validation": "valid", "test": "test"}


class _PtbBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """One example per line of Mikolov's files; feature ``text`` is the line without its newline."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Mikolov's simple-examples files, one example per line."}
    FILE_PATTERN = ""  # "ptb.{split}.txt" or "ptb.char.{split}.txt"

    def _info(self):
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({"text": tfds.features.Text()}),
            homepage="https://www.fit.vutbr.cz/~imikolov/rnnlm/",
            citation=_CITATION,
            disable_shuffling=True,  # the line order is the text: keep it
        )

    def _split_generators(self, dl_manager):
        return {
            split: self._generate_examples(read_text(self.FILE_PATTERN.format(split=name), dl_manager))
            for split, name in _SPLIT_FILES.items()
        }

    def _generate_examples(self, text):
        for index, line in enumerate(lines_of(text)):
            yield index, {"text": line}


class PtbWord(_PtbBuilder):
    """Word-level Penn Treebank (Mikolov): 42,068 / 3,370 / 3,761 lines; <eos> is added by the pipeline."""

    FILE_PATTERN = "ptb/ptb.{split}.txt"


class PtbChar(_PtbBuilder):
    """Character-level Penn Treebank (Mikolov): characters separated by spaces, words by "_"."""

    FILE_PATTERN = "ptb/ptb.char.{split}.txt"
