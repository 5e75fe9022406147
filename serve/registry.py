"""The models being served: everything under the model base, highest version of each.

``ModelRegistry.refresh()`` scans MODEL_BASE/NAME/VERSION (TF Serving's layout),
loads any model or version it has not loaded yet, and swaps it in; requests already
running keep the version they started with (they hold a reference to it), so a swap
fails no request. Names come from the folder listing and are matched, never joined
from client input into a path.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from tf_zoneout.saved_model.export_graph import signature_inputs
from tf_zoneout.saved_model.model_base import METADATA_FILE, ModelKind, latest_versions, read_metadata
from tf_zoneout.saved_model.signatures import SIGNATURES
from tf_zoneout_serve.backends import InProcessBackend, TFServingBackend
from tf_zoneout_serve.batching import Batcher
from tf_zoneout_serve.operations import OPERATIONS
from tf_zoneout_serve.settings import Settings

log = logging.getLogger("zoneout.serve")


@dataclass
class LoadedModel:
    """One version of one model, with a batcher per signature."""

    name: str
    version: int
    path: Path
    metadata: dict
    backend: object
    batchers: dict = field(default_factory=dict)

    signature_inputs: dict = field(default_factory=dict)
    # language_model, seq2seq, classifier (tf-zoneout exports), or saved_model: a SavedModel without
    # metadata.json (e.g. a user's ``model.export()``), served by its signatures alone.
    kind: ModelKind = ModelKind.SAVED_MODEL

    @functools.cached_property
    def vocabulary(self) -> dict:
        """A language model's ``vocab.json`` (tokens, their text, start, eol and unknown ids)."""
        return json.loads((self.path / self.metadata["step"]["vocabulary_file"]).read_text())

    @property
    def created(self) -> int:
        """When this version was published (its folder's modification time), in Unix seconds."""
        return int(self.path.stat().st_mtime)

    def describe(self) -> dict:
        metadata = self.metadata
        return {
            "name": self.name,
            "version": self.version,
            "task": metadata.get("task"),
            "kind": self.kind.value,
            "operations": [op.value for op in OPERATIONS[self.kind]],
            "level": metadata.get("level"),
            "vocab_size": metadata.get("vocab_size"),
            "signatures": sorted(self.backend.signatures),
            "signature_inputs": self.signature_inputs,
            "metrics": metadata.get("metrics", {}),
            "step": {k: v for k, v in metadata["step"].items() if k != "vocabulary_file"}
            if "step" in metadata
            else None,
        }


def _outdated(kind: ModelKind, inputs: dict) -> str:
    """What a tf-zoneout export of ``kind`` lacks of the signatures this service calls ('' if none)."""
    for signature in SIGNATURES.get(kind, ()):
        missing = set(signature.input_names) - set(inputs.get(signature.key, ()))
        if signature.key not in inputs or missing:
            return f"signature {signature.key!r} " + (
                f"lacks {sorted(missing)}" if signature.key in inputs else "is missing"
            )
    return ""


class ModelRegistry:
    def __init__(self, settings: Settings, on_batch=None):
        self.settings = settings
        self.models: dict[str, LoadedModel] = {}
        self.on_batch = on_batch
        self._lock = asyncio.Lock()
        self.loaded_once = False

    def get(self, name: str) -> LoadedModel | None:
        return self.models.get(name)

    def _load(self, name: str, version: int, path: Path) -> LoadedModel:
        metadata = read_metadata(path)
        kind = ModelKind.of(metadata)
        inputs = signature_inputs(path)
        if not metadata:
            log.info(
                "%s has no %s (not a tf-zoneout export): serving it as a plain SavedModel, through "
                "POST /v1/models/%s/predict only (signatures: %s)",
                path, METADATA_FILE, name, ", ".join(sorted(inputs)),
            )  # fmt: skip
        outdated = _outdated(kind, inputs)
        if outdated:
            raise ValueError(
                f"it was exported by an older tf-zoneout ({outdated}); export it again: zoneout export "
                "RUN_DIR --rebuild --model-base MODEL_BASE"
            )
        if self.settings.tf_serving:
            backend = TFServingBackend(self.settings.tf_serving, name, version, sorted(inputs))
        else:
            backend = InProcessBackend(path)
        return LoadedModel(name, version, path, metadata, backend, signature_inputs=inputs, kind=kind)

    def _batchers(self, model: LoadedModel) -> dict:
        s = self.settings
        semaphore = asyncio.Semaphore(s.model_concurrency)
        # A plain SavedModel's requests are not merged: their inputs need not concatenate.
        size = s.max_batch_size if s.batching and model.kind != ModelKind.SAVED_MODEL else 1
        batchers = {}
        for signature in model.backend.signatures:

            def call(inputs, signature=signature, backend=model.backend):
                return backend.call(signature, inputs)

            def on_batch(n, seconds, signature=signature):
                if self.on_batch:
                    self.on_batch(model.name, signature, n, seconds)

            batchers[signature] = Batcher(
                call, size, s.max_batch_wait_ms / 1000, s.max_queue, semaphore, on_batch
            )
        return batchers

    async def refresh(self) -> list[str]:
        """Load new models and versions; returns what changed ("name:version")."""
        async with self._lock:
            changed = []
            for name, (version, path) in latest_versions(self.settings.model_base).items():
                current = self.models.get(name)
                if current is not None and current.version == version:
                    continue
                try:
                    model = await asyncio.to_thread(self._load, name, version, path)
                except Exception as error:  # a broken version must not take the service down
                    log.error("could not load %s version %s: %s", name, version, error)
                    continue
                model.batchers = self._batchers(model)
                self.models[name] = model  # the swap: new requests get the new version
                changed.append(f"{name}:{version}")
                if current is not None:
                    asyncio.get_running_loop().create_task(self._retire(current))
            self.loaded_once = True
            return changed

    async def _retire(self, model: LoadedModel, grace: float = 30.0) -> None:
        """Stop an old version's batchers once its requests are done (or after ``grace``)."""
        for _ in range(int(grace * 10)):
            if all(b.waiting == 0 for b in model.batchers.values()):
                break
            await asyncio.sleep(0.1)
        for batcher in model.batchers.values():
            await batcher.close()

    async def watch(self) -> None:
        """Refresh every ``poll_seconds`` until cancelled."""
        while True:
            await asyncio.sleep(self.settings.poll_seconds)
            try:
                changed = await self.refresh()
                if changed:
                    log.info("loaded %s", ", ".join(changed))
            except Exception as error:
                log.error("model refresh failed: %s", error)

    async def close(self) -> None:
        for model in self.models.values():
            for batcher in model.batchers.values():
                await batcher.close()
