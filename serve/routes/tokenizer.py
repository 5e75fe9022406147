"""vLLM's tokenizer endpoints: POST /tokenize, POST /detokenize, GET /tokenizer_info, for language models.

Token ids are the export's own (``tokenize`` and ``read`` signatures), the ids of its ``step``
signature and of ``/v1/completions`` prompts. A request names its model in the body (``model``; a
query parameter for ``tokenizer_info``) or, with one language model served, need not. Each model
also has its own base path, ``/models/{name}``, with the same three routes and
``/models/{name}/v1/completions``: a client that derives the tokenizer's address from the
completions URL, as lm-evaluation-harness does, works with any of several models.
"""

# No `from __future__ import annotations`: the body types are local names FastAPI must resolve.
from fastapi import APIRouter, Request

from tf_zoneout.saved_model import signatures
from tf_zoneout_serve.dependencies import RegistryDep, SettingsDep, named_model
from tf_zoneout_serve.engine import read_ids, run_signature
from tf_zoneout_serve.errors import responses
from tf_zoneout_serve.operations import Operation
from tf_zoneout_serve.schemas import (
    DetokenizeResponse,
    TokenizeResponse,
    TokenizerInfo,
    tokenizer_request_models,
)

MODEL_BASE_PATH = "/models/{name}"


async def tokenize(model, body, request: Request, settings) -> dict:
    """The ``tokenize`` signature's ids of ``body.prompt`` (the start token first with
    ``add_special_tokens``)."""
    outputs = await run_signature(
        model, signatures.TOKENIZE.key, signatures.text_inputs([body.prompt]), request, settings
    )
    count = int(outputs["num_tokens"][0])
    ids = [int(i) for i in outputs["token_ids"][0][:count]]
    strs = [t.decode("utf-8", "replace") for t in outputs["tokens"][0][:count]]
    if body.add_special_tokens:
        start = model.vocabulary["start_id"]
        ids, strs = [start, *ids], [model.vocabulary["text"][start], *strs]
    return {
        "count": len(ids),
        "max_model_len": settings.max_text_chars,
        "tokens": ids,
        "token_strs": strs if body.return_token_strs else None,
        "num_unknown": int(outputs["num_unknown"][0]),
    }


async def detokenize(model, body, request: Request, settings) -> dict:
    """The text of ``body.tokens`` (words joined by spaces), as the ``read`` signature writes it."""
    if not body.tokens:
        return {"prompt": ""}
    outputs = await read_ids(model, body.tokens, request, settings)
    return {"prompt": outputs["text"][0].decode("utf-8", "replace")}


def tokenizer_info(model, settings) -> dict:
    vocabulary = model.vocabulary
    start, unknown = vocabulary["start_id"], vocabulary["unknown_id"]
    return {
        "tokenizer_class": f"tf_zoneout.TextCodec ({vocabulary['level']})",
        "level": vocabulary["level"],
        "vocab_size": len(vocabulary["tokens"]),
        "bos_token": vocabulary["text"][start],
        "eos_token": vocabulary["text"][start],
        "unk_token": vocabulary["tokens"][unknown] if unknown >= 0 else None,
        "model_max_length": settings.max_text_chars,
    }


def build_router(max_text_chars: int) -> APIRouter:
    """The tokenizer routes, at the root and under each model's base path, for this server's limits."""
    router = APIRouter()
    requests = tokenizer_request_models(max_text_chars)
    tokenize_request, detokenize_request = requests.tokenize, requests.detokenize
    failures = responses(400, 404, 413, 415, 503, openai=True)

    @router.post("/tokenize", response_model=TokenizeResponse, responses=failures)
    async def tokenize_text(
        body: tokenize_request, request: Request, registry: RegistryDep, settings: SettingsDep
    ):
        """A text's token ids (vLLM's /tokenize)."""
        model = named_model(registry, Operation.TOKENIZE, body.model)
        return await tokenize(model, body, request, settings)

    @router.post(MODEL_BASE_PATH + "/tokenize", response_model=TokenizeResponse, responses=failures)
    async def tokenize_for(
        name: str, body: tokenize_request, request: Request, registry: RegistryDep, settings: SettingsDep
    ):
        """A text's token ids for model ``name``."""
        model = named_model(registry, Operation.TOKENIZE, body.model, name)
        return await tokenize(model, body, request, settings)

    @router.post("/detokenize", response_model=DetokenizeResponse, responses=failures)
    async def detokenize_ids(
        body: detokenize_request, request: Request, registry: RegistryDep, settings: SettingsDep
    ):
        """The text of token ids (vLLM's /detokenize)."""
        model = named_model(registry, Operation.TOKENIZE, body.model)
        return await detokenize(model, body, request, settings)

    @router.post(MODEL_BASE_PATH + "/detokenize", response_model=DetokenizeResponse, responses=failures)
    async def detokenize_for(
        name: str, body: detokenize_request, request: Request, registry: RegistryDep, settings: SettingsDep
    ):
        """The text of token ids for model ``name``."""
        model = named_model(registry, Operation.TOKENIZE, body.model, name)
        return await detokenize(model, body, request, settings)

    info_failures = responses(400, 404, openai=True)

    @router.get("/tokenizer_info", response_model=TokenizerInfo, responses=info_failures)
    async def info(registry: RegistryDep, settings: SettingsDep, model: str | None = None):
        """The tokenizer's special tokens and limits (vLLM's /tokenizer_info)."""
        return tokenizer_info(named_model(registry, Operation.TOKENIZE, model), settings)

    @router.get(MODEL_BASE_PATH + "/tokenizer_info", response_model=TokenizerInfo, responses=info_failures)
    async def info_for(name: str, registry: RegistryDep, settings: SettingsDep):
        """The tokenizer of model ``name``."""
        return tokenizer_info(named_model(registry, Operation.TOKENIZE, None, name), settings)

    return router
