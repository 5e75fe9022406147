"""What the TFDS builders of this package share: where sources are read from."""

from __future__ import annotations

from pathlib import Path

from tf_zoneout.data import sources


def source_folder(dl_manager) -> Path | None:
    """The folder to read raw files from: TFDS's manual_dir if given, else $ZONEOUT_DATA_DIR.

    None means: download from the standard sources.
    """
    manual = getattr(dl_manager, "_manual_dir", None)
    if manual and Path(manual).is_dir():
        return Path(manual)
    return sources.data_dir()


def read_text(path: str, dl_manager) -> str:
    """A verified raw text file as str (see ``sources.read``)."""
    return sources.read(path, source_folder(dl_manager)).decode("utf-8")


def lines_of(text: str) -> list[str]:
    """The newline-terminated lines of a file, without their newlines.

    Text after the last newline is not a line (the PTB char files end with "\\n ").
    """
    return text.split("\n")[:-1]
