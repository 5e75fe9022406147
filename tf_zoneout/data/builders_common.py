"""What the TFDS builders of this package share: where sources are read from, and preparing one."""

from __future__ import annotations

import os
from pathlib import Path

import tensorflow_datasets as tfds

from tf_zoneout.data import sources


def prepared_builder(dataset: str, tfds_dir=None, data_dir: str | os.PathLike | None = None):
    """The TFDS builder of ``dataset``, prepared (read, verified and converted once, then cached).

    Args:
        dataset: a registered name ("ptb_char", "ptb_word", "text8", "zoneout_mnist", ...).
        tfds_dir: the prepared TFDS data folder (default ``~/tensorflow_datasets``).
        data_dir: the raw files, laid out like shared/data; passed to the builder as TFDS's
            ``manual_dir``. Default ``$ZONEOUT_DATA_DIR``, else download.

    Raises:
        DataError: ``data_dir`` is not a folder, or a raw file is missing or corrupt.
    """
    builder = tfds.builder(dataset, data_dir=tfds_dir)
    config = None
    if data_dir is not None:
        folder = Path(data_dir).expanduser()
        if not folder.is_dir():
            raise sources.DataError(
                f"the data folder {folder} does not exist; pass a folder laid out like shared/data "
                "(ptb/, mnist/, text8/) or leave it out to use $ZONEOUT_DATA_DIR or download"
            )
        config = tfds.download.DownloadConfig(manual_dir=str(folder.resolve()))
    builder.download_and_prepare(download_config=config)
    return builder


def source_folder(dl_manager) -> Path | None:
    """The folder to read raw files from: TFDS's manual_dir if given, else $ZONEOUT_DATA_DIR.

    None means: download from the standard sources.

    Args:
        dl_manager: the builder's ``tfds.download.DownloadManager``.
    """
    manual = getattr(dl_manager, "_manual_dir", None)
    if manual and Path(manual).is_dir():
        return Path(manual)
    return sources.data_dir()


def read_text(path: str, dl_manager) -> str:
    """A verified raw text file as str (see ``sources.read``).

    Args:
        path: a key of ``sources.FILES``, e.g. "ptb/ptb.char.train.txt".
        dl_manager: the builder's ``tfds.download.DownloadManager`` (see ``source_folder``).

    Raises:
        DataError: the file is missing, unreadable, truncated or corrupt.
    """
    return sources.read(path, source_folder(dl_manager)).decode("utf-8")


def lines_of(text: str) -> list[str]:
    """The newline-terminated lines of a file, without their newlines.

    Text after the last newline is not a line (the PTB char files end with "\\n ").

    Args:
        text: a file's content.
    """
    return text.split("\n")[:-1]
