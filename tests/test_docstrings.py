"""The docstrings are a reference: every public function and class of the library's documented
modules names each of its arguments (under Args, or Attributes for a dataclass). Mixins are
documented by the layers and cells built on them; enumerations take no arguments."""

from __future__ import annotations

import dataclasses
import enum
import importlib
import inspect
import re

import pytest

MODULES = (
    "tf_zoneout",
    "tf_zoneout.zoneout",
    "tf_zoneout.cells",
    "tf_zoneout.layers",
    "tf_zoneout.wrapper",
    "tf_zoneout.batchnorm",
    "tf_zoneout.regularizers",
    "tf_zoneout.export",
    "tf_zoneout.saved_model.signatures",
    "tf_zoneout.saved_model.model_base",
    "tf_zoneout.kernels.scan",
    "tf_zoneout.kernels.batch_norm_lstm",
    "tf_zoneout.data.lm",
    "tf_zoneout.data.pmnist",
    "tf_zoneout.data.builders_common",
    "tf_zoneout_train.task_registry",
    "tf_zoneout_train.loop",
)


def public_callables(module_name: str):
    module = importlib.import_module(module_name)
    names = getattr(module, "__all__", None) or [n for n in vars(module) if not n.startswith("_")]
    for name in names:
        item = getattr(module, name)
        own = getattr(item, "__module__", None) == module.__name__ or hasattr(module, "__all__")
        if not own or not (inspect.isclass(item) or inspect.isfunction(item)):
            continue
        if inspect.isclass(item) and (
            name.endswith("Mixin") or issubclass(item, enum.Enum | BaseException) or inspect.isabstract(item)
        ):
            continue
        yield name, item


def undocumented_arguments(item) -> list[str]:
    doc = inspect.getdoc(item) or ""
    if inspect.isclass(item):
        if item.__init__ is object.__init__ or "Protocol" in str(item.__mro__):
            return []
        doc += "\n" + (inspect.getdoc(item.__init__) or "")
        signature = inspect.signature(item.__init__)
    else:
        signature = inspect.signature(item)
    section = "Attributes" if dataclasses.is_dataclass(item) else "Args"
    if section not in doc:
        section = "Args"
    return [
        name
        for name, parameter in signature.parameters.items()
        if name not in ("self", "cls")
        and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
        and not re.search(rf"^\s+{re.escape(name)}( \([^)]*\))?:", doc, re.M)
    ]


@pytest.mark.parametrize("module_name", MODULES)
def test_every_public_argument_is_documented(module_name):
    gaps = {
        name: missing
        for name, item in public_callables(module_name)
        if (missing := undocumented_arguments(item))
    }
    assert not gaps, f"{module_name}: arguments without a description: {gaps}"
