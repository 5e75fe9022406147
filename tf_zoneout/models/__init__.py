"""Models built from the zoneout layers: language model, seq2seq, sequence classifier."""

from tf_zoneout.models.classifier import SequenceClassifier
from tf_zoneout.models.language_model import LanguageModel
from tf_zoneout.models.recurrent import CELL_TYPES, RecurrentSpec, make_recurrent_layer
from tf_zoneout.models.seq2seq import Seq2Seq

__all__ = [
    "CELL_TYPES",
    "LanguageModel",
    "RecurrentSpec",
    "Seq2Seq",
    "SequenceClassifier",
    "make_recurrent_layer",
]
