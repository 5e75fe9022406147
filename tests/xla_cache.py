"""One XLA compilation cache for the whole test run (import before the first XLA compile).

An executable compiled by one xdist worker (or a subprocess) is read back by the others
instead of compiled again: about 15% of the suite's CPU time. The process that imports this
first (xdist's controller, or a plain pytest) makes the folder and removes it at the end;
workers and subprocesses inherit it through ``TF_XLA_FLAGS``, so nothing carries over from
one `make test` to the next.
"""

from __future__ import annotations

import os
import shutil
import tempfile

FLAG = "--tf_xla_persistent_cache_directory"

_own_cache = None
if FLAG not in os.environ.get("TF_XLA_FLAGS", ""):
    _own_cache = tempfile.mkdtemp(prefix="tf_zoneout-xla-cache-")
    os.environ["TF_XLA_FLAGS"] = f"{os.environ.get('TF_XLA_FLAGS', '')} {FLAG}={_own_cache}".strip()


def remove_own_cache() -> None:
    """Delete the folder if this process made it (workers leave it to the controller)."""
    if _own_cache:
        shutil.rmtree(_own_cache, ignore_errors=True)
