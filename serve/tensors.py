"""JSON values <-> signature tensors for ``/predict`` (no HTTP here).

Inputs are checked against the signature's own input specs (read from ``saved_model.pb``): the
same names, a value that converts to the dtype exactly (no boolean for a number, no number for a
string), the rank and fixed sizes, and one batch size shared by all inputs.
"""

from __future__ import annotations

import math

import numpy as np

from tf_zoneout.errors import ZoneoutError


class InputError(ZoneoutError, ValueError):
    """A predict request's inputs do not fit the signature; the message says which input and why."""


def _leaves(value):
    if isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    else:
        yield value


def _check_leaves(name: str, value, dtype: str) -> None:
    for leaf in _leaves(value):
        if dtype == "string":
            ok = isinstance(leaf, str)
        elif dtype == "bool":
            ok = isinstance(leaf, bool)
        elif dtype.startswith(("int", "uint")):
            ok = isinstance(leaf, int) and not isinstance(leaf, bool)
        else:
            ok = isinstance(leaf, int | float) and not isinstance(leaf, bool)
        if not ok:
            raise InputError(f"input {name!r} is {dtype}; got {type(leaf).__name__} {leaf!r}")


def to_arrays(specs: dict[str, dict], given: dict) -> dict[str, np.ndarray]:
    """The signature's inputs as arrays, from JSON ``given`` ({name: nested lists}).

    Args:
        specs: {input name: {"dtype": "float32", "shape": [None, 784]}} (see
            ``tf_zoneout.saved_model.export_graph.signature_inputs``).
        given: the request's inputs.

    Raises:
        InputError: a missing or unknown input, a value of another type, a ragged list, a shape
            that does not fit, or inputs with different batch sizes.
    """
    if set(given) != set(specs):
        raise InputError(f"this signature takes inputs {sorted(specs)}; got {sorted(given)}")
    arrays = {}
    for name, spec in specs.items():
        dtype, value = spec["dtype"], given[name]
        _check_leaves(name, value, dtype)
        try:
            if dtype == "string":
                array = np.asarray(value, dtype=object)
                array = np.vectorize(lambda s: s.encode(), otypes=[object])(array) if array.size else array
            else:
                array = np.asarray(value, dtype=dtype)
        except (ValueError, TypeError, OverflowError) as error:
            raise InputError(f"input {name!r} does not convert to {dtype}: {error}") from None
        shape = spec["shape"]
        if shape is not None:
            fits = array.ndim == len(shape) and all(d is None or d == s for d, s in zip(shape, array.shape))
            if not fits:
                wanted = "[" + ", ".join("None" if d is None else str(d) for d in shape) + "]"
                raise InputError(f"input {name!r} has shape {wanted}; got {list(array.shape)}")
        if array.ndim == 0:
            raise InputError(f"input {name!r} needs a batch dimension (a list, one entry per example)")
        arrays[name] = array
    if len({a.shape[0] for a in arrays.values()}) > 1:
        sizes = {n: a.shape[0] for n, a in arrays.items()}
        raise InputError(f"inputs must share one batch size (first dimension); got {sizes}")
    return arrays


def to_json(array: np.ndarray):
    """Nested lists of an output: strings decoded as UTF-8, NaN and infinities as null (JSON has none)."""
    array = np.asarray(array)
    if array.dtype == object:
        return (
            np.vectorize(lambda b: b.decode("utf-8", "replace"), otypes=[object])(array).tolist()
            if array.size
            else array.tolist()
        )
    if array.dtype.kind == "f":
        return _finite_or_none(array.tolist())
    return array.tolist()


def _finite_or_none(value):
    if isinstance(value, list):
        return [_finite_or_none(v) for v in value]
    return value if math.isfinite(value) else None
