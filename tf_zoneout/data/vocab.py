"""Token vocabularies of the language-model data sets, saved as files for exports and the service."""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import os
import string
from pathlib import Path

from tf_zoneout.data.sources import DataError

EOS = "<eos>"  # PTB word: one per line, as in Mikolov's setup
EOL = "<eol>"  # PTB char: one end-of-line symbol per line

# Fixed expected sizes (the data sets' published vocabularies: PTB's 50 characters and 10,000 words,
# text8's 27 characters): checked when a vocabulary is built.
EXPECTED_SIZES = {"ptb_char": 50, "ptb_word": 10_000, "text8": 27}


def tokenize(dataset: str, text: str) -> list[str]:
    """Tokens of one example's ``text``: PTB lines end with their end-of-line token."""
    if dataset == "ptb_word":
        return [*text.split(), EOS]
    if dataset == "ptb_char":
        return [*text.split(), EOL]
    if dataset == "text8":
        return list(text)
    raise ValueError(f"unknown language-model data set {dataset!r}; expected one of {sorted(EXPECTED_SIZES)}")


@dataclasses.dataclass(frozen=True)
class Vocabulary:
    """An ordered token list; a token's id is its index.

    Attributes:
        dataset: the data set it belongs to.
        tokens: the tokens, most frequent first (ties alphabetical).
        eol: the end-of-line token, or None (text8).
        unknown: the token unknown inputs map to, or None.
    """

    dataset: str
    tokens: tuple[str, ...]
    eol: str | None
    unknown: str | None

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def index(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.tokens)}

    def encode(self, tokens) -> list[int]:
        """Ids of ``tokens``; unknown tokens map to ``unknown`` or raise KeyError."""
        index = self.index
        fallback = index.get(self.unknown) if self.unknown else None
        ids = []
        for token in tokens:
            i = index.get(token, fallback)
            if i is None:
                raise KeyError(f"token {token!r} is not in the {self.dataset} vocabulary")
            ids.append(i)
        return ids

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1) + "\n"

    def digest(self) -> str:
        """A short fingerprint of the token list (names files derived from this vocabulary)."""
        return hashlib.sha256("\0".join(self.tokens).encode()).hexdigest()[:16]

    def save(self, path: str | os.PathLike) -> Path:
        """Write as JSON (atomically: a crash never leaves a half-written file)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(self.to_json())
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Vocabulary:
        data = json.loads(Path(path).read_text())
        return cls(data["dataset"], tuple(data["tokens"]), data["eol"], data["unknown"])


def build_vocabulary(dataset: str, train_texts) -> Vocabulary:
    """The vocabulary of a data set from its training examples' texts.

    text8's is fixed (space + a-z). Raises DataError if the size differs from the
    published one (a sign of wrong data).
    """
    if dataset == "text8":
        tokens = (" ", *string.ascii_lowercase)
    else:
        counts = collections.Counter(t for text in train_texts for t in tokenize(dataset, text))
        tokens = tuple(sorted(counts, key=lambda t: (-counts[t], t)))
    eol = {"ptb_word": EOS, "ptb_char": EOL}.get(dataset)
    unknown = "<unk>" if dataset == "ptb_word" else None
    vocab = Vocabulary(dataset, tokens, eol, unknown)
    if len(vocab) != EXPECTED_SIZES[dataset]:
        raise DataError(
            f"{dataset}: the training split gives {len(vocab)} token types, expected "
            f"{EXPECTED_SIZES[dataset]}; the data is not the standard {dataset}."
        )
    return vocab
