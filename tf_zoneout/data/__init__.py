"""Data: TFDS builders (registered on import) and tf.data input pipelines.

import tensorflow_datasets as tfds
import tf_zoneout.data  # registers ptb_char, ptb_word, text8, zoneout_mnist
ds = tfds.load("ptb_char", split="train")
"""

from tf_zoneout.data.mnist import ZoneoutMnist
from tf_zoneout.data.ptb_builders import PtbChar, PtbWord
from tf_zoneout.data.sources import DataError
from tf_zoneout.data.wiki_text8 import Text8

__all__ = ["DataError", "PtbChar", "PtbWord", "Text8", "ZoneoutMnist"]
