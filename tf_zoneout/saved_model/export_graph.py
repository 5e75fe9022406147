"""What a SavedModel's signatures run: their ops, checked for portability and determinism.

An export must serve on a CPU-only TF Serving whatever machine trained it, so no function may be
compiled with XLA (``_XlaMustCompile``, ``XlaLaunch``, ...), call a cuDNN kernel (``CudnnRNN*``) or
use an op without a CPU kernel. Signatures that score or classify must give the same answer every
time, so they may not contain random ops; generation may, but only stateless ones (the seed decides).
``problems(directory, deterministic=[...])`` lists what breaks these rules.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

DEVICE_SPECIFIC = re.compile(r"^_?(Xla|Cudnn|TPU|Nccl)")
RANDOM = re.compile(r"Random|Multinomial|^Rng|TruncatedNormal|Shuffle|CandidateSampler")
# What a loop-free signature (the token-level ``step``) may not hold: loops, tensor lists, strings,
# lookups and ragged tensors, which TFLite's builtin ops and ONNX do not offer.
NOT_LOOP_FREE = re.compile(
    r"While|TensorList|TensorArray|String|Unicode|Regex|Ragged|Lookup|^If$|^StatelessIf$"
)
XLA_ATTRIBUTES = ("_XlaMustCompile", "_XlaCompile", "_XlaScope")
# The attribute names under which a node refers to the functions it runs (While, If, Case, calls).
FUNCTION_ATTRIBUTES = ("f", "body", "cond", "then_branch", "else_branch", "branches")


def read_meta_graph(directory):
    """The ``serve`` MetaGraphDef of the SavedModel in ``directory``."""
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((Path(directory) / "saved_model.pb").read_bytes())
    for meta_graph in saved_model.meta_graphs:
        if "serve" in meta_graph.meta_info_def.tags:
            return meta_graph
    raise ValueError(f"{directory} has no MetaGraph tagged 'serve'")


def _called_functions(node) -> list[str]:
    names = []
    for key in FUNCTION_ATTRIBUTES:
        if key in node.attr:
            value = node.attr[key]
            names += [value.func.name] if value.HasField("func") else [f.name for f in value.list.func]
    return [n for n in names if n]


def _nodes_of_signature(meta_graph, signature: str) -> list:
    """Every node the signature's outputs depend on: in the graph, and inside each function they
    call (recursively)."""
    graph = {node.name: node for node in meta_graph.graph_def.node}
    library = {f.signature.name: f for f in meta_graph.graph_def.library.function}
    outputs = meta_graph.signature_def[signature].outputs.values()
    pending = [t.name.split(":")[0] for t in outputs]
    seen_nodes, seen_functions, found = set(), set(), []

    def visit_function(name):
        if name in seen_functions or name not in library:
            return
        seen_functions.add(name)
        for inner in library[name].node_def:
            found.append(inner)
            for called in _called_functions(inner) + ([inner.op] if inner.op in library else []):
                visit_function(called)

    while pending:
        name = pending.pop()
        if name in seen_nodes or name not in graph:
            continue
        seen_nodes.add(name)
        node = graph[name]
        found.append(node)
        pending += [i.lstrip("^").split(":")[0] for i in node.input]
        for called in _called_functions(node) + ([node.op] if node.op in library else []):
            visit_function(called)
    return found


@functools.cache
def _has_cpu_kernel(op: str) -> bool:
    from tensorflow.python.framework import kernels

    return any(k.device_type in ("CPU", "DEFAULT") for k in kernels.get_registered_kernels_for_op(op).kernel)


def signature_ops(directory, signature: str) -> set[str]:
    """The op types a signature runs (function calls resolved into the functions' own ops)."""
    meta_graph = read_meta_graph(directory)
    library = {f.signature.name for f in meta_graph.graph_def.library.function}
    return {n.op for n in _nodes_of_signature(meta_graph, signature) if n.op not in library}


def problems(directory, deterministic=(), loop_free=()) -> list[str]:
    """What keeps the export from serving anywhere, or from answering the same twice: one line each.

    Args:
        directory: a SavedModel folder.
        deterministic: signatures that must contain no random op at all; every other signature
            may contain stateless random ops only.
        loop_free: signatures that must also hold no loop, string, lookup or ragged op
            (``NOT_LOOP_FREE``), so TFLite builtins and ONNX can run them.

    Returns:
        Messages naming the signature, the op and the rule; empty when the export is fine.
    """
    meta_graph = read_meta_graph(directory)
    library = {f.signature.name: f for f in meta_graph.graph_def.library.function}
    found = []
    for name, function in library.items():
        for key in XLA_ATTRIBUTES:
            if key in function.attr and function.attr[key].b:
                found.append(f"function {name} is compiled with XLA ({key}); export a model built with "
                             "jit_compile=False")  # fmt: skip
    for signature in sorted(s for s in meta_graph.signature_def if not s.startswith("__")):
        for node in _nodes_of_signature(meta_graph, signature):
            op = node.op
            where = f"signature {signature!r}: op {op} (node {node.name})"
            if op in library:
                continue
            if DEVICE_SPECIFIC.match(op):
                found.append(f"{where} is device-specific (XLA, cuDNN, TPU or NCCL)")
            elif any(key in node.attr and node.attr[key].b for key in XLA_ATTRIBUTES):
                found.append(f"{where} is marked for XLA compilation")
            elif not _has_cpu_kernel(op):
                found.append(f"{where} has no CPU kernel")
            if signature in loop_free and NOT_LOOP_FREE.search(op):
                found.append(f"{where} is a loop, string or lookup op in a signature that must be loop-free")
            if RANDOM.search(op):
                if signature in deterministic:
                    found.append(f"{where} is random in a signature that must be deterministic")
                elif not op.startswith("Stateless"):
                    found.append(f"{where} is a stateful random op (a seed would not decide the result)")
    return sorted(set(found))


def signature_inputs(directory) -> dict[str, dict[str, dict]]:
    """{signature: {input: {"dtype": "float32", "shape": [None, 784]}}} of a SavedModel (None: any
    size; a shape of None: any rank), read from ``saved_model.pb`` without loading the model."""
    import tensorflow as tf

    meta_graph = read_meta_graph(directory)
    found = {}
    for name, signature in meta_graph.signature_def.items():
        if name.startswith("__"):
            continue
        found[name] = {
            key: {
                "dtype": tf.dtypes.as_dtype(info.dtype).name,
                "shape": None
                if info.tensor_shape.unknown_rank
                else [d.size if d.size >= 0 else None for d in info.tensor_shape.dim],
            }
            for key, info in sorted(signature.inputs.items())
        }
    return found
