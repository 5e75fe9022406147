"""Which implementation runs a zoneout recurrence on this machine: measured once, then cached.

The fused layers have two implementations of the same loop, with the same hand-written
BPTT and the same in-loop masks (so the same outputs and gradients):

- ``"xla"``: the forward and backward loops compiled with XLA. Little per-step overhead,
  but the recurrent matmuls run on XLA:CPU's own GEMM.
- ``"graph"``: the same loops as TensorFlow graphs. More per-op overhead, but the matmuls
  run on TensorFlow's oneDNN kernels.

Which one is faster depends on the processor and the shapes (PERF.md: on an AMD EPYC
with AVX2 the XLA loop wins clearly; on an Intel Xeon with AVX-512/AMX oneDNN's GEMM is
much faster than XLA's at these shapes). So a layer built with ``jit_compile="auto"``
(the default) times both on the machine it runs on, once per (layer configuration,
batch size, dtype, training or inference), and remembers the winner in memory and in
a JSON file (``$TF_ZONEOUT_CACHE_DIR`` or ``~/.cache/tf_zoneout/kernel_choices.json``),
keyed by the machine (CPU model, ISA, threads, TensorFlow version) so a copied home
directory never carries one CPU's choice to another.

Forcing a choice: ``jit_compile=True`` ("xla") or ``False`` ("graph") on the layer, or
``TF_ZONEOUT_KERNEL=xla|graph`` in the environment for every layer left at "auto".
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import tensorflow as tf

IMPLEMENTATIONS = ("xla", "graph")
ENV_VAR = "TF_ZONEOUT_KERNEL"
CACHE_DIR_ENV = "TF_ZONEOUT_CACHE_DIR"
CACHE_FILE = "kernel_choices.json"
DEFAULT = "xla"  # where nothing can be measured (symbolic build, distributed replica)
WARMUP_RUNS = 2
TIMED_ROUNDS = 5

logger = logging.getLogger("tf_zoneout")

# (machine signature, key) -> record; filled from measurements and the cache file.
_memory: dict[tuple[str, str], dict] = {}


def check_jit_compile(value):
    """Validate a layer's ``jit_compile`` argument: "auto", True or False."""
    if isinstance(value, bool) or value == "auto":
        return value
    raise ValueError(
        f"`jit_compile` must be 'auto' (measure both implementations on this machine and keep the "
        f"faster), True (XLA) or False (TensorFlow graph). Received: jit_compile={value!r}"
    )


def forced_implementation() -> str | None:
    """The implementation forced by ``$TF_ZONEOUT_KERNEL`` ("xla" or "graph"), or None for "auto"."""
    value = os.environ.get(ENV_VAR, "auto").strip().lower()
    if value in ("", "auto"):
        return None
    if value not in IMPLEMENTATIONS:
        raise ValueError(f"{ENV_VAR}={value!r}: expected one of auto, {', '.join(IMPLEMENTATIONS)}")
    return value


def cpu_description() -> dict:
    """CPU model and its vector ISA (amx / avx512 / avx2 / avx / other), from /proc/cpuinfo."""
    model, flags = platform.processor() or platform.machine(), set()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name") and not flags:
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    isa = next(
        (
            name
            for name, flag in (("amx", "amx_tile"), ("avx512", "avx512f"), ("avx2", "avx2"), ("avx", "avx"))
            if flag in flags
        ),
        "other",
    )
    return {"model": model, "isa": isa}


def threads() -> int:
    """The number of cores this process may use (what TensorFlow's thread pools size to)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def machine_signature() -> str:
    """What a choice depends on besides the layer: CPU, ISA, threads, TensorFlow version, devices."""
    cpu = cpu_description()
    intra = tf.config.threading.get_intra_op_parallelism_threads() or threads()
    gpus = len(tf.config.list_physical_devices("GPU"))
    return f"{cpu['model']} | {cpu['isa']} | {intra} threads | {gpus} GPU | TF {tf.__version__}"


def cache_path() -> Path:
    base = os.environ.get(CACHE_DIR_ENV)
    if not base:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tf_zoneout"
    return Path(base) / CACHE_FILE


def _read_cache_file(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # missing or unreadable: measure again and rewrite it
    return data if isinstance(data, dict) else {}


def _write_cache_entry(machine: str, key: str, record: dict) -> None:
    """Add one record to the cache file (re-read first, replaced atomically; never fatal)."""
    path = cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = _read_cache_file(path)
        data.setdefault(machine, {})[key] = record
        with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as tmp:
            json.dump(data, tmp, indent=1, sort_keys=True)
        os.replace(tmp.name, path)
    except OSError as error:
        logger.warning("tf_zoneout: could not write the kernel choice cache %s (%s)", path, error)
        with contextlib.suppress(OSError, UnboundLocalError):
            os.unlink(tmp.name)


def cached_choice(key: str) -> str | None:
    """The cached choice for ``key`` on this machine (memory, then the cache file), or None."""
    machine = machine_signature()
    record = _memory.get((machine, key))
    if record is None:
        record = _read_cache_file(cache_path()).get(machine, {}).get(key)
        if not isinstance(record, dict) or record.get("choice") not in IMPLEMENTATIONS:
            return None
        _memory[(machine, key)] = record
    return record["choice"]


def measure(make_runner: Callable[[str], Callable[[], None]], names, rounds: int = TIMED_ROUNDS) -> dict:
    """Median seconds per call of each implementation's runner: warm-up (tracing, compiling),
    then round-robin rounds so drift hits every runner alike. One that raises is left out."""
    usable = {}
    for name in names:
        try:
            run = make_runner(name)
            for _ in range(WARMUP_RUNS):
                run()
        except Exception as error:  # e.g. XLA unavailable for this device or op
            logger.warning("tf_zoneout: implementation %r failed while being measured: %s", name, error)
        else:
            usable[name] = run
    times = {name: [] for name in usable}
    for _ in range(rounds):
        for name, run in usable.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def choose(key: str, make_runner: Callable[[str], Callable[[], None]], can_measure: bool = True) -> str:
    """The implementation to use for ``key``.

    Order: ``$TF_ZONEOUT_KERNEL``; the cached choice; a measurement (when ``can_measure``),
    whose result is cached; else ``DEFAULT``.

    Args:
        key: what the choice is for (layer configuration, batch, dtype, mode); a string.
        make_runner: implementation name -> a zero-argument callable that runs one
            representative call and waits for its result. Called eagerly (outside any
            graph being traced).
        can_measure: False where running eager code is impossible or pointless (inside
            Keras's symbolic build or a distribution strategy's replica function).
    """
    forced = forced_implementation()
    if forced:
        return forced
    cached = cached_choice(key)
    if cached:
        return cached
    if not can_measure:
        return DEFAULT
    with tf.init_scope():  # run eagerly even when called while a tf.function is traced
        seconds = measure(make_runner, IMPLEMENTATIONS)
    if not seconds:
        return DEFAULT
    choice = min(seconds, key=seconds.get)
    record = {
        "choice": choice,
        "median_ms": {name: round(value * 1e3, 3) for name, value in seconds.items()},
        "measured": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    machine = machine_signature()
    _memory[(machine, key)] = record
    _write_cache_entry(machine, key, record)
    logger.info("tf_zoneout: %s -> %s (median ms %s)", key, choice, record["median_ms"])
    return choice


def clear_memory() -> None:
    """Forget the in-memory choices (the cache file is left alone); for tests."""
    _memory.clear()
