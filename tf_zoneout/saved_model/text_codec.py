"""In-graph tokenization and detokenization for the exported language models.

A ``TextCodec`` maps strings to token ids and back with TensorFlow ops only, from a
vocabulary file (one token per line, the line number is the id), so a SavedModel
carries it as an asset and TF Serving needs no Python code of ours.

- characters (``ptb_char``, ``text8``): one token per character; ``space`` is the
  token a space becomes (PTB's "_"); a newline becomes the end-of-line token. A
  character outside the vocabulary is tried in lower case, then skipped and counted.
- words (``ptb_word``): whitespace-separated; a newline is the end-of-line token (``<eos>``); a
  word outside the vocabulary is tried in lower case, then becomes ``<unk>`` and is counted.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class CodecSpec:
    """How a data set's text maps to tokens (see the module docstring)."""

    level: str  # "char" or "word"
    start: str  # the token every text is scored/continued after
    eol: str | None = None
    space: str | None = None
    unknown: str | None = None

    @classmethod
    def for_dataset(cls, dataset: str, eol: str | None, unknown: str | None) -> CodecSpec:
        if dataset == "ptb_char":
            return cls("char", start=eol, eol=eol, space="_")
        if dataset == "text8":
            return cls("char", start=" ", space=" ")
        if dataset == "ptb_word":
            return cls("word", start=eol, eol=eol, unknown=unknown)
        raise ValueError(f"no text codec for data set {dataset!r}")


VOCABULARY_FILE = "vocab.json"  # in every language-model export, beside saved_model.pb


def vocabulary_document(tokens, spec: CodecSpec) -> dict:
    """The export's ``vocab.json``: everything a client outside TensorFlow needs to turn text into the
    ids of the ``step`` signature and back, as this codec does.

    Keys: ``level`` ("char" or "word"); ``tokens`` (id -> the vocabulary's token); ``text`` (id -> the
    text it stands for: the end-of-line token is a newline, PTB's "_" a space); ``start_id`` (the
    token every text is read after); ``eol_id``, ``unknown_id`` (-1 when none); ``space`` (the token a
    space becomes in character models); and ``rules``, the encoding in words.

    Args:
        tokens: the vocabulary's tokens, index = id.
        spec: its ``CodecSpec``.
    """
    tokens = list(tokens)
    index = {t: i for i, t in enumerate(tokens)}
    text = [
        "\n" if t == spec.eol else (" " if spec.level == "char" and t == spec.space else t) for t in tokens
    ]
    rules = (
        "characters: a space is the `space` token, a newline the end-of-line token; a character "
        "outside the vocabulary is tried in lower case, then skipped"
        if spec.level == "char"
        else "words: split on whitespace, a newline is the end-of-line token; a word outside the "
        "vocabulary is tried in lower case, then is `unknown_id`"
    )
    return {
        "level": spec.level,
        "tokens": tokens,
        "text": text,
        "start_id": index[spec.start],
        "eol_id": index.get(spec.eol, -1) if spec.eol else -1,
        "unknown_id": index.get(spec.unknown, -1) if spec.unknown else -1,
        "space": spec.space,
        "rules": rules,
    }


class TextCodec(tf.Module):
    """Strings <-> ids inside the graph, for one vocabulary file."""

    def __init__(self, vocab_file, spec: CodecSpec, tokens: list[str]):
        super().__init__()
        self.spec = spec
        self.vocab_asset = tf.saved_model.Asset(str(vocab_file))
        key_is_line = tf.lookup.TextFileIndex.WHOLE_LINE
        line_number = tf.lookup.TextFileIndex.LINE_NUMBER
        self.to_id = tf.lookup.StaticHashTable(
            tf.lookup.TextFileInitializer(self.vocab_asset, tf.string, key_is_line, tf.int64, line_number),
            default_value=-1,
        )
        self.to_token = tf.lookup.StaticHashTable(
            tf.lookup.TextFileInitializer(self.vocab_asset, tf.int64, line_number, tf.string, key_is_line),
            default_value="",
        )
        index = {t: i for i, t in enumerate(tokens)}
        self.start_id = index[spec.start]
        self.eol_id = index.get(spec.eol, -1) if spec.eol else -1
        self.unknown_id = index.get(spec.unknown, -1) if spec.unknown else -1

    def encode(self, texts):
        """Ragged ids [B, None] int32 and the number of unknown items per text [B] int32.

        Works on the flat values of the split texts: element-wise ops on ragged tensors add
        dozens of shape assertions each, which made the exported signatures ten times larger
        and their tracing slower."""
        if self.spec.level == "word":
            if self.spec.eol:
                texts = tf.strings.regex_replace(texts, "\n", f" {self.spec.eol} ")
            pieces = tf.strings.split(texts)
            flat = pieces.flat_values
        else:
            pieces = tf.strings.unicode_split(texts, "UTF-8")
            flat = pieces.flat_values
            flat = tf.where(tf.equal(flat, " "), self.spec.space, flat)
            if self.spec.eol:
                flat = tf.where(tf.equal(flat, "\n"), self.spec.eol, flat)
        ids = self.to_id.lookup(flat)
        ids = tf.where(ids < 0, self.to_id.lookup(tf.strings.lower(flat)), ids)
        known = ids >= 0
        if self.spec.level == "word":
            ids = tf.where(known, ids, tf.cast(self.unknown_id, tf.int64))
        rows = pieces.value_rowids()
        unknown = tf.math.unsorted_segment_sum(tf.cast(~known, tf.int32), rows, pieces.nrows())
        if self.spec.level == "char":  # unknown characters are skipped
            ids, rows = tf.boolean_mask(ids, known), tf.boolean_mask(rows, known)
        ids = tf.RaggedTensor.from_value_rowids(
            tf.cast(ids, tf.int32), rows, nrows=pieces.nrows(), validate=False
        )
        return ids, tf.cast(unknown, tf.int32)

    def display(self, ids):
        """The text each id stands for (same shape as ``ids``): eol -> newline, PTB's "_" -> space."""
        tokens = self.to_token.lookup(tf.cast(ids, tf.int64))
        if self.spec.eol:
            tokens = tf.where(tf.equal(tf.cast(ids, tf.int64), self.eol_id), "\n", tokens)
        if self.spec.level == "char" and self.spec.space != " ":
            tokens = tf.where(tf.equal(tokens, self.spec.space), " ", tokens)
        return tokens

    def decode(self, ids, lengths, continuation: bool = True):
        """Strings [B] from ids [B, N] int32, each row cut at ``lengths`` [B].

        Words are joined by spaces, with none around a newline; a ``continuation`` (generated text)
        also begins with a space, a whole text (``continuation`` False) does not."""
        mask = tf.sequence_mask(lengths, tf.shape(ids)[1])
        pieces = self.display(ids)
        if self.spec.level == "char":
            return tf.strings.reduce_join(tf.where(mask, pieces, ""), axis=1)
        joined = tf.strings.reduce_join(tf.where(mask, tf.strings.join([" ", pieces]), ""), axis=1)
        joined = tf.strings.regex_replace(joined, " ?\n ?", "\n")
        return joined if continuation else tf.strings.regex_replace(joined, "^ ", "")
