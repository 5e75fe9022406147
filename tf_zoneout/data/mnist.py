"""TFDS builder for MNIST from the four standard idx files (for sequential and permuted MNIST)."""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

from tf_zoneout.data import sources
from tf_zoneout.data.builders_common import source_folder

VALIDATION_SIZE = 10_000  # the last 10,000 training images, as in the pMNIST literature


def parse_idx(content: bytes, path: str) -> np.ndarray:
    """Decode an idx file (images [N, 28, 28] or labels [N]) as uint8."""
    magic = int.from_bytes(content[:4], "big")
    ndim = magic & 0xFF
    if magic >> 8 != 0x08 or ndim not in (1, 3):
        raise sources.DataError(f"{path} is not an idx uint8 file (magic {magic:#x}).")
    dims = [int.from_bytes(content[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(content, np.uint8, offset=4 + 4 * ndim).reshape(dims)


class ZoneoutMnist(tfds.core.GeneratorBasedBuilder):
    """MNIST with features like TFDS's ``mnist``: ``image`` [28, 28, 1] uint8, ``label``.

    Images are stored as raw tensors (TFDS's ``mnist`` stores PNGs, which cost about 1 ms
    each to encode when preparing and to decode at every read).

    Splits: train = the first 50,000 training images, validation = the last 10,000,
    test = the 10,000 test images.
    """

    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = {
        "1.0.0": "idx files; validation = last 10,000 of train.",
        "1.1.0": "images stored as raw uint8 tensors, not PNG: preparing is about 10x faster, "
        "reading needs no decoding; the same values, shapes and dtypes.",
    }

    def _info(self):
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Tensor(shape=(28, 28, 1), dtype=np.uint8),
                    "label": tfds.features.ClassLabel(num_classes=10),
                }
            ),
            supervised_keys=("image", "label"),
            homepage="http://yann.lecun.com/exdb/mnist/",
            disable_shuffling=True,
        )

    def _split_generators(self, dl_manager):
        folder = source_folder(dl_manager)

        def load(kind, name):
            path = f"mnist/{kind}-{name}"
            return parse_idx(sources.read(path, folder), path)

        train_images = load("train", "images-idx3-ubyte")
        train_labels = load("train", "labels-idx1-ubyte")
        cut = len(train_images) - VALIDATION_SIZE
        return {
            "train": self._generate_examples(train_images[:cut], train_labels[:cut]),
            "validation": self._generate_examples(train_images[cut:], train_labels[cut:]),
            "test": self._generate_examples(
                load("t10k", "images-idx3-ubyte"), load("t10k", "labels-idx1-ubyte")
            ),
        }

    def _generate_examples(self, images, labels):
        for index, (image, label) in enumerate(zip(images, labels)):
            yield index, {"image": image[:, :, None], "label": int(label)}
