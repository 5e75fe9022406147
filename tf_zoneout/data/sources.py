"""Where the raw data files come from, and their verification.

Every file is identified by the sha256 of its raw (uncompressed) content, so a
plain file, a .gz copy and a freshly downloaded archive are verified the same way.
A folder laid out like ../shared/data (``ptb/``, ``mnist/``, ``text8/``) is used
when given (``--data-dir`` / ``ZONEOUT_DATA_DIR``); otherwise files are downloaded
from the standard source. Anything missing, truncated or corrupt raises one
``DataError`` that names the file, the expected checksum and the fix.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import os
import tarfile
import urllib.request
import zipfile
from pathlib import Path

from tf_zoneout.errors import ZoneoutError

DATA_DIR_ENV = "ZONEOUT_DATA_DIR"

PTB_URL = "http://www.fit.vutbr.cz/~imikolov/rnnlm/simple-examples.tgz"
MNIST_URL = "https://storage.googleapis.com/cvdf-datasets/mnist/"
TEXT8_URL = "http://mattmahoney.net/dc/text8.zip"


class DataError(ZoneoutError, RuntimeError):
    """A data file is missing, truncated or corrupt; the message says which and how to fix it."""


@dataclasses.dataclass(frozen=True)
class SourceFile:
    """One raw data file.

    Attributes:
        path: path inside a data folder, e.g. "ptb/ptb.train.txt" (".gz" also accepted there).
        sha256: sha256 of the raw content; None where no verified value exists (text8).
        size: raw size in bytes.
        url: standard download location (a file, or an archive holding ``member``).
        member: path of the file inside the archive at ``url``, if any.
        md5: an md5 of the raw content, checked when ``sha256`` is None.
    """

    path: str
    sha256: str | None
    size: int
    url: str
    member: str | None = None
    md5: str | None = None


def _ptb(name: str, sha256: str, size: int) -> SourceFile:
    return SourceFile(f"ptb/{name}", sha256, size, PTB_URL, member=f"./simple-examples/data/{name}")


def _mnist(name: str, sha256: str, size: int) -> SourceFile:
    return SourceFile(f"mnist/{name}", sha256, size, f"{MNIST_URL}{name}.gz")


# Raw sha256 and sizes of the files as distributed (Mikolov's PTB archive, MNIST), each verified
# against independent copies; text8's md5 is a public loader's, not verified here.
FILES: dict[str, SourceFile] = {
    f.path: f
    for f in (
        _ptb("ptb.train.txt", "fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf", 5101618),
        _ptb("ptb.valid.txt", "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2", 399782),
        _ptb("ptb.test.txt", "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0", 449945),
        _ptb(
            "ptb.char.train.txt", "e313d91425e06c4f0a8fb6e881dcce0c291f2a0e9f4dda54833069b122f91da9", 10034964
        ),
        _ptb(
            "ptb.char.valid.txt", "21661f63ec355085879458b6524644d4add5573541b4be14fb52ab2e2e995eb8", 786084
        ),
        _ptb("ptb.char.test.txt", "1ef5607ac3c463b16e38bfe7900dd3bfc91de5a96e0f21e7eab5188b465b8ebe", 884846),
        _mnist(
            "train-images-idx3-ubyte",
            "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            47040016,
        ),
        _mnist(
            "train-labels-idx1-ubyte",
            "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            60008,
        ),
        _mnist(
            "t10k-images-idx3-ubyte",
            "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            7840016,
        ),
        _mnist(
            "t10k-labels-idx1-ubyte",
            "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
            10008,
        ),
        SourceFile(
            "text8/text8",
            None,
            100_000_000,
            TEXT8_URL,
            member="text8",
            md5="3bea1919949baf155f99411df5fada7e",
        ),
    )
}


def data_dir(explicit: str | os.PathLike | None = None) -> Path | None:
    """The local data folder: ``explicit`` if given, else $ZONEOUT_DATA_DIR, else None (download)."""
    chosen = explicit or os.environ.get(DATA_DIR_ENV)
    return Path(chosen).expanduser() if chosen else None


def _fix_hint(source: SourceFile, folder: Path | None) -> str:
    where = f"folder {folder}" if folder else "the download cache"
    return (
        f"Fix: put a verified copy of {source.path} (or {source.path}.gz) in {where}, "
        f"point {DATA_DIR_ENV} or --data-dir to a folder laid out like shared/data, "
        f"or unset them to download it from {source.url}; `zoneout data verify` checks a folder."
    )


def _expected(source: SourceFile) -> str:
    if source.sha256:
        return f"sha256 {source.sha256}, {source.size:,} bytes"
    return f"{source.size:,} bytes, md5 {source.md5}"


def verify(content: bytes, source: SourceFile, origin: str, folder: Path | None = None) -> bytes:
    """Return ``content`` if it is ``source``'s raw content, else raise DataError."""
    if source.sha256:
        ok = hashlib.sha256(content).hexdigest() == source.sha256
    else:
        ok = len(content) == source.size and hashlib.md5(content).hexdigest() == source.md5
    if not ok:
        raise DataError(
            f"{origin} is corrupt or truncated: its content ({len(content):,} bytes) does not match "
            f"the expected {_expected(source)}. {_fix_hint(source, folder)}"
        )
    return content


def _read_local(source: SourceFile, folder: Path) -> tuple[bytes, str]:
    plain = folder / source.path
    candidates = [plain, plain.with_name(plain.name + ".gz"), plain.with_name(plain.name + ".zip")]
    for path in candidates:
        if not path.is_file():
            continue
        try:
            if path.suffix == ".gz":
                return gzip.decompress(path.read_bytes()), str(path)
            if path.suffix == ".zip":
                with zipfile.ZipFile(path) as archive:
                    return archive.read(source.member or plain.name), str(path)
            return path.read_bytes(), str(path)
        except (OSError, EOFError, zipfile.BadZipFile, KeyError) as error:
            raise DataError(
                f"{path} cannot be read ({error}); expected {_expected(source)}. {_fix_hint(source, folder)}"
            ) from error
    raise DataError(
        f"{source.path} not found in {folder} (looked for {', '.join(p.name for p in candidates)}); "
        f"expected {_expected(source)}. {_fix_hint(source, folder)}"
    )


def _download(source: SourceFile, cache: Path) -> tuple[bytes, str]:
    cache.mkdir(parents=True, exist_ok=True)
    archive_path = cache / Path(source.url).name
    if not archive_path.is_file():
        tmp = archive_path.with_suffix(archive_path.suffix + ".partial")
        try:
            with urllib.request.urlopen(source.url, timeout=60) as response, open(tmp, "wb") as out:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
        except OSError as error:
            tmp.unlink(missing_ok=True)
            raise DataError(
                f"downloading {source.url} failed ({error}). {_fix_hint(source, None)}"
            ) from error
        tmp.replace(archive_path)  # atomic: a killed download leaves no partial file behind
    blob = archive_path.read_bytes()
    try:
        if source.url.endswith(".tgz"):
            with tarfile.open(fileobj=io.BytesIO(blob)) as archive:
                return archive.extractfile(source.member).read(), f"{archive_path}:{source.member}"
        if source.url.endswith(".zip"):
            with zipfile.ZipFile(io.BytesIO(blob)) as archive:
                return archive.read(source.member), f"{archive_path}:{source.member}"
        if source.url.endswith(".gz"):
            return gzip.decompress(blob), str(archive_path)
    except (OSError, EOFError, KeyError, tarfile.TarError, zipfile.BadZipFile) as error:
        archive_path.unlink(missing_ok=True)
        raise DataError(f"{archive_path} is not a valid archive ({error}); it was removed, retry.") from error
    return blob, str(archive_path)


def default_cache() -> Path:
    return Path(os.environ.get("ZONEOUT_CACHE_DIR", Path.home() / ".cache" / "tf_zoneout" / "downloads"))


def read(path: str, folder: str | os.PathLike | None = None) -> bytes:
    """Raw, verified content of the data file ``path`` (a key of ``FILES``).

    Args:
        path: e.g. "ptb/ptb.char.train.txt".
        folder: local data folder; default $ZONEOUT_DATA_DIR, else download.

    Raises:
        DataError: missing, unreadable, truncated or corrupt file, or a failed download.
    """
    source = FILES[path]
    local = data_dir(folder)
    content, origin = _read_local(source, local) if local else _download(source, default_cache())
    return verify(content, source, origin, local)
