"""The service through the real app (TestClient with lifespan) and a real uvicorn process."""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import tensorflow as tf
from conftest import CLASSIFIER, LM, SEQ2SEQ, SERVED, WORD_LM
from fastapi.testclient import TestClient

from bench.local_server import LocalServer
from tf_zoneout.saved_model.model_base import publish
from tf_zoneout_serve.app import create_app
from tf_zoneout_serve.settings import Settings


def wait_healthy(client, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get("/health").status_code == 200:
            return
        time.sleep(0.2)
    raise AssertionError("the service did not become healthy")


@pytest.fixture(scope="module")
def client(model_base):
    # Pieces of 16 tokens, so that the tests' short generations stream in several model calls.
    settings = Settings(model_base=model_base, poll_seconds=0.5, stream_chunk_tokens=16)
    with TestClient(create_app(settings)) as test_client:
        wait_healthy(test_client)
        yield test_client


GENERATE = {"prompt": "the company ", "max_new_tokens": 30, "temperature": 1.0, "seed": 7}


def test_health_is_503_without_models(tmp_path):
    with TestClient(create_app(Settings(model_base=tmp_path))) as empty:
        response = empty.get("/health")
        assert response.status_code == 503


def test_models_endpoint_describes_each_model(client):
    models = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
    assert set(models) == set(SERVED)
    assert models[LM]["version"] == 1 and models[LM]["task"] == "char_ptb" and models[LM]["vocab_size"] == 50
    assert "test" in models[LM]["metrics"] and models[SEQ2SEQ]["kind"] == "seq2seq"
    assert models[LM]["operations"] == [
        "generate",
        "generate_stream",
        "score",
        "completions",
        "tokenize",
        "predict",
    ]
    assert models[SEQ2SEQ]["operations"] == ["generate", "generate_stream", "predict"]
    assert models[CLASSIFIER]["operations"] == ["predict"]


def test_generate_is_reproducible_by_seed(client):
    first = client.post(f"/v1/models/{LM}/generate", json=GENERATE)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["finish_reason"] == "length" and body["num_tokens"] == 30 and len(body["text"]) == 30
    assert body["logprob"] < 0 and body["seed"] == 7
    assert client.post(f"/v1/models/{LM}/generate", json=GENERATE).json()["text"] == body["text"]
    other = client.post(f"/v1/models/{LM}/generate", json={**GENERATE, "seed": 8}).json()
    assert other["text"] != body["text"]
    unseeded = client.post(f"/v1/models/{LM}/generate", json={"prompt": "a", "max_new_tokens": 5}).json()
    assert isinstance(unseeded["seed"], int)
    # JSON Schema's integer: 7.0 is the integer 7 (what some clients send), the same text
    as_float = client.post(
        f"/v1/models/{LM}/generate", json={**GENERATE, "seed": 7.0, "max_new_tokens": 30.0}
    )
    assert as_float.status_code == 200 and as_float.json()["text"] == body["text"]


def test_generate_stops_at_a_stop_sequence(client):
    text = client.post(f"/v1/models/{LM}/generate", json={**GENERATE, "max_new_tokens": 60}).json()["text"]
    stop = text[10:12]
    cut = client.post(
        f"/v1/models/{LM}/generate", json={**GENERATE, "max_new_tokens": 60, "stop": [stop]}
    ).json()
    assert cut["finish_reason"] == "stop" and cut["text"] == text[: text.find(stop)]


def test_generate_stream_sends_chunks_then_totals(client):
    with client.stream("POST", f"/v1/models/{LM}/generate_stream", json=GENERATE) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = "".join(response.iter_text())
    events = [block for block in raw.split("\n\n") if block.strip()]
    chunks = [json.loads(e.split("data: ", 1)[1])["text"] for e in events if not e.startswith("event:")]
    done = json.loads(events[-1].split("data: ", 1)[1])
    assert events[-1].startswith("event: done") and len(chunks) >= 2
    assert "".join(chunks) == done["text"] and done["num_tokens"] == 30
    # One seed rule: the chunks continue from the carried state and make the non-streamed text.
    whole = client.post(f"/v1/models/{LM}/generate", json=GENERATE).json()["text"]
    assert done["text"] == whole
    resumed = re.search(
        r'zoneout_batch_size_count\{model="char_lm",signature="resume"\} (\S+)', client.get("/metrics").text
    )
    assert resumed and float(resumed.group(1)) >= 1  # later chunks ran resume, not the prompt again


def _stream_texts(client, body) -> tuple[list[str], dict]:
    with client.stream("POST", f"/v1/models/{LM}/generate_stream", json=body) as response:
        raw = "".join(response.iter_text())
    events = [block for block in raw.split("\n\n") if block.strip()]
    chunks = [json.loads(e.split("data: ", 1)[1])["text"] for e in events if not e.startswith("event:")]
    return chunks, json.loads(events[-1].split("data: ", 1)[1])


def test_a_stop_sequence_spanning_two_chunks_stops_and_sent_text_is_never_taken_back(client):
    """Chunks of 16 tokens: a stop sequence over the first boundary (characters 15-16) stops the
    stream where the non-streamed text stops, and no event sends text the stop then cuts."""
    body = {**GENERATE, "max_new_tokens": 40}
    whole = client.post(f"/v1/models/{LM}/generate", json=body).json()["text"]
    stop = next(whole[15:end] for end in range(17, 26) if whole.find(whole[15:end]) == 15)
    cut = client.post(f"/v1/models/{LM}/generate", json={**body, "stop": [stop]}).json()
    chunks, done = _stream_texts(client, {**body, "stop": [stop]})
    assert cut["text"] == whole[:15] == "".join(chunks) == done["text"]
    assert done["finish_reason"] == "stop" == cut["finish_reason"]
    # A stop that never comes: the held-back text is sent at the end, all of it.
    chunks, done = _stream_texts(client, {**body, "stop": [whole[15] + "\u2603"]})
    assert "".join(chunks) == whole and done["finish_reason"] == "length"


def test_score_agrees_with_the_savedmodel(client, model_base):
    text = "the company said its profit rose"
    response = client.post(f"/v1/models/{LM}/score", json={"text": text})
    assert response.status_code == 200, response.text
    body = response.json()
    direct = tf.saved_model.load(str(model_base / LM / "1")).signatures["score"](text=tf.constant([text]))
    assert body["unit"] == "character" and body["num_tokens"] == len(text) == len(body["tokens"])
    np.testing.assert_allclose(body["bits_per_token"], float(direct["bits_per_token"][0]), rtol=1e-5)
    np.testing.assert_allclose(body["perplexity"], 2 ** body["bits_per_token"], rtol=1e-6)
    np.testing.assert_allclose(
        body["token_surprisal"], direct["token_surprisal"][0, : len(text)].numpy(), rtol=1e-5
    )


def test_out_of_vocabulary_characters_are_reported_not_failed(client):
    body = client.post(f"/v1/models/{LM}/score", json={"text": "The ☃ Bank"}).json()
    assert body["num_unknown"] == 1  # the snowman; capitals fall back to lower case
    generated = client.post(f"/v1/models/{LM}/generate", json={**GENERATE, "prompt": "€€ the"}).json()
    assert generated["num_unknown"] == 2


def test_seq2seq_model_answers_generate(client, model_base):
    response = client.post(f"/v1/models/{SEQ2SEQ}/generate", json={"prompt": "12+34"})
    assert response.status_code == 200
    direct = tf.saved_model.load(str(model_base / SEQ2SEQ / "1")).signatures["serving_default"]
    assert response.json()["text"] == direct(problem=tf.constant(["12+34"]))["answer"][0].numpy().decode()
    assert response.json()["finish_reason"] == "answer"


@pytest.mark.parametrize(
    "path, body, status, message",
    [
        (f"/v1/models/{LM}/generate", {"prompt": "a", "temperature": -1}, 422, "temperature"),
        (f"/v1/models/{LM}/generate", {"prompt": "a", "top_p": 0}, 422, "top_p"),
        (f"/v1/models/{LM}/generate", {"prompt": "a", "max_new_tokens": "many"}, 422, "max_new_tokens"),
        (f"/v1/models/{LM}/generate", {"prompt": "a", "max_new_tokens": 2000}, 422, "max_new_tokens"),
        (f"/v1/models/{LM}/generate", {"prompt": "a", "seed": -3}, 422, "seed"),
        (f"/v1/models/{LM}/generate", {"prompt": "a", "temprature": 1}, 422, "temprature"),
        (f"/v1/models/{LM}/generate", {"prompt": 5}, 422, "prompt"),
        (f"/v1/models/{LM}/score", {"text": ""}, 422, "text"),
        (f"/v1/models/{LM}/score", {}, 422, "text"),
        ("/v1/models/missing/generate", {"prompt": "a"}, 404, "no model named 'missing'"),
        ("/v1/models/..%2F..%2Fetc/score", {"text": "a"}, 404, "no route"),  # a path is never a model name
        (f"/v1/models/{SEQ2SEQ}/score", {"text": "1+1"}, 404, "no score operation (it offers generate"),
        (f"/v1/models/{CLASSIFIER}/generate", {"prompt": "1"}, 404, f"POST /v1/models/{CLASSIFIER}/predict"),
        (f"/v1/models/{CLASSIFIER}/generate_stream", {}, 404, "is an image classifier: it has no"),
        (f"/v1/models/{LM}/generate", {"prompt": "a", "seed": False}, 422, "seed"),  # strict types
        (f"/v1/models/{LM}/generate", {"prompt": "a", "top_k": 2.5}, 422, "top_k"),
        (f"/v1/models/{LM}/generate", {"prompt": "a", "top_k": "2"}, 422, "top_k"),
        (f"/v1/models/{LM}/generate", {"prompt": "a", "seed": 2**53}, 422, "seed"),
        (f"/v1/models/{LM}/generate", {"prompt": "a", "stop": [1]}, 422, "stop"),
        (f"/v1/models/{LM}/score", {"text": 1}, 422, "text"),
    ],
)
def test_bad_input_gets_its_status_and_a_message(client, path, body, status, message):
    response = client.post(path, json=body)
    assert response.status_code == status, response.text
    answer = response.json()  # a path no route serves answers in OpenAI's envelope under /v1/
    assert message in (answer["detail"] if "detail" in answer else answer["error"]["message"])


def test_oversized_body_gets_413_with_or_without_content_length(client):
    big = json.dumps({"text": "a" * 300_000})
    declared = client.post(
        f"/v1/models/{LM}/score", content=big, headers={"content-type": "application/json"}
    )
    assert declared.status_code == 413 and "larger than" in declared.json()["detail"]

    def chunks():  # no Content-Length: the body arrives chunked, 20 MB
        for _ in range(2000):
            yield b" " * 10_000

    chunked = client.post(
        f"/v1/models/{LM}/score", content=chunks(), headers={"content-type": "application/json"}
    )
    assert chunked.status_code == 413 and "larger than" in chunked.json()["detail"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_body_that_is_not_json_gets_415(client, content_type):
    headers = {"content-type": content_type} if content_type else {}
    response = client.post(f"/v1/models/{LM}/score", content=b"text=hello", headers=headers)
    assert response.status_code == 415 and "application/json" in response.json()["detail"]
    charset = client.post(
        f"/v1/models/{LM}/score",
        content=json.dumps({"text": "the bank"}).encode(),
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert charset.status_code == 200


@pytest.mark.parametrize(("name", "text"), [(LM, "\u0088\u00d3"), (WORD_LM, "   ")])
def test_text_with_nothing_to_score_gets_zero_tokens(client, name, text):
    body = client.post(f"/v1/models/{name}/score", json={"text": text}).json()
    assert body["num_tokens"] == 0 and body["bits_per_token"] == 0.0 and body["perplexity"] == 1.0
    assert body["tokens"] == [] and body["token_surprisal"] == []


def test_generate_from_an_empty_or_unknown_prompt(client):
    for name in (LM, WORD_LM):
        for prompt in ("", "\u0088\u00d3"):
            response = client.post(
                f"/v1/models/{name}/generate", json={"prompt": prompt, "max_new_tokens": 5}
            )
            assert response.status_code == 200, response.text


def test_metrics_count_requests_batches_tokens_and_errors(client):
    client.post(f"/v1/models/{LM}/generate", json=GENERATE)
    client.post("/v1/models/missing/generate", json={})
    text = client.get("/metrics").text
    for name in (
        "zoneout_requests_total",
        "zoneout_request_seconds_bucket",
        "zoneout_batch_size_bucket",
        "zoneout_tokens_generated_total",
        'zoneout_errors_total{kind="unknown_model"}',
    ):
        assert name in text, name


def test_openapi_shows_the_limits_the_server_enforces(model_base):
    settings = Settings(model_base=model_base, max_new_tokens=321, max_text_chars=500, max_body_bytes=32_768)
    with TestClient(create_app(settings)) as small:
        schemas = small.get("/openapi.json").json()["components"]["schemas"]
        generate = schemas["GenerateRequest"]["properties"]
        assert generate["temperature"]["minimum"] == 0 and generate["max_new_tokens"]["maximum"] == 321
        assert (
            generate["prompt"]["maxLength"] == 500
            and schemas["ScoreRequest"]["properties"]["text"]["maxLength"] == 500
            and schemas["TokenizeRequest"]["properties"]["prompt"]["maxLength"] == 500
            and schemas["DetokenizeRequest"]["properties"]["tokens"]["maxItems"] == 500
        )
        wait_healthy(small)
        over = small.post(f"/v1/models/{LM}/generate", json={"prompt": "a", "max_new_tokens": 322})
        assert over.status_code == 422 and "max_new_tokens" in over.json()["detail"]


def test_settings_refuse_a_body_limit_below_the_largest_valid_request(tmp_path):
    with pytest.raises(ValueError, match="raise max_body_bytes"):
        Settings(model_base=tmp_path, max_text_chars=20_000, max_body_bytes=65_536)


def test_openapi_lists_every_status_each_endpoint_returns(client):
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/v1/models/{name}/generate",
        "/v1/models/{name}/generate_stream",
        "/v1/models/{name}/score",
    ):
        assert set(paths[path]["post"]["responses"]) == {"200", "404", "413", "415", "422", "503"}
    assert "400" in paths["/v1/models/{name}/predict"]["post"]["responses"]
    invalid = paths["/v1/models/{name}/score"]["post"]["responses"]["422"]["content"]["application/json"]
    assert invalid["schema"]["$ref"].endswith("/ValidationErrorBody")
    assert "text/plain" in paths["/metrics"]["get"]["responses"]["200"]["content"]
    assert set(paths["/health"]["get"]["responses"]) == {"200", "503"}


def test_grpc_backend_answers_like_the_in_process_one(client, model_base):
    import tf_serving_stub

    server, address = tf_serving_stub.start(model_base)
    try:
        with TestClient(create_app(Settings(model_base=model_base, tf_serving=address))) as grpc_client:
            wait_healthy(grpc_client)
            for path, body in (
                (f"/v1/models/{LM}/generate", GENERATE),
                (f"/v1/models/{LM}/score", {"text": "the bank"}),
                (f"/v1/models/{SEQ2SEQ}/generate", {"prompt": "3+4", "seed": 1}),
                (f"/v1/models/{WORD_LM}/score", {"text": "the company said"}),
                (f"/v1/models/{CLASSIFIER}/predict", {"inputs": {"pixels": [[0.5] * 784, [0.1] * 784]}}),
            ):
                via_grpc, in_process = grpc_client.post(path, json=body), client.post(path, json=body)
                assert via_grpc.status_code == 200, via_grpc.text
                a, b = via_grpc.json(), in_process.json()
                assert a.get("text") == b.get("text") and a.get("num_tokens") == b.get("num_tokens")
                assert a.get("bits_per_token", 0) == pytest.approx(b.get("bits_per_token", 0), rel=1e-5)
                assert a.get("outputs", {}).get("label") == b.get("outputs", {}).get("label")
    finally:
        server.stop(None)


# -- a real uvicorn process ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def queued_server(model_base):
    """A server with a short queue: one model call at a time, one request per call; the queue
    holds the running request and two more (the overload and abandoned-request tests)."""
    server = LocalServer(model_base, max_queue=3, max_batch_size=1, model_concurrency=1, max_new_tokens=4096)
    yield server
    server.stop()


def test_real_uvicorn_overload_gives_only_200_and_503(queued_server):
    server = queued_server
    body = {**GENERATE, "max_new_tokens": 200}

    def one(_):
        return httpx.post(f"{server.url}/v1/models/{LM}/generate", json=body, timeout=120)

    with ThreadPoolExecutor(max_workers=100) as pool:
        responses = list(pool.map(one, range(100)))
    statuses = {r.status_code for r in responses}
    assert statuses <= {200, 503} and 503 in statuses and 200 in statuses
    rejected = next(r for r in responses if r.status_code == 503)
    assert rejected.headers["retry-after"] == "1" and "overloaded" in rejected.json()["detail"]
    assert httpx.get(server.url + "/health").status_code == 200


def test_version_swap_under_load_fails_no_request(model_base, tmp_path):
    base = tmp_path / "models"
    shutil.copytree(model_base, base)
    server = LocalServer(base, poll_seconds=0.2, max_queue=1000)
    stop = threading.Event()
    statuses, versions = [], set()

    def load():
        while not stop.is_set():
            r = httpx.post(f"{server.url}/v1/models/{LM}/score", json={"text": "the bank"}, timeout=60)
            statuses.append(r.status_code)
            if r.status_code == 200:
                versions.add(r.json()["version"])

    try:
        workers = [threading.Thread(target=load) for _ in range(8)]
        for w in workers:
            w.start()
        time.sleep(1.0)
        publish(base / LM / "1", base, LM)  # version 2 appears while requests run
        deadline = time.monotonic() + 60
        while 2 not in versions and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(0.5)
        stop.set()
        for w in workers:
            w.join()
        assert versions == {1, 2}
        assert set(statuses) == {200}, sorted(set(statuses))
    finally:
        stop.set()
        server.stop()


@pytest.fixture(scope="module")
def live_server(model_base):
    server = LocalServer(model_base, stream_chunk_tokens=16)
    yield server
    server.stop()


def test_real_uvicorn_serves_every_endpoint(live_server):
    url = live_server.url
    assert httpx.get(url + "/health").json()["status"] == "ok"
    assert {m["name"] for m in httpx.get(url + "/v1/models").json()["models"]} == set(SERVED)
    generated = httpx.post(f"{url}/v1/models/{LM}/generate", json=GENERATE, timeout=60).json()
    assert generated["num_tokens"] == 30
    with httpx.stream("POST", f"{url}/v1/models/{LM}/generate_stream", json=GENERATE, timeout=60) as stream:
        raw = "".join(stream.iter_text())
    assert raw.rstrip().split("\n\n")[-1].startswith("event: done")
    scored = httpx.post(f"{url}/v1/models/{LM}/score", json={"text": "the bank"}, timeout=60).json()
    assert scored["num_tokens"] == 8
    answer = httpx.post(f"{url}/v1/models/{SEQ2SEQ}/generate", json={"prompt": "1+2"}, timeout=60)
    assert answer.status_code == 200
    assert "zoneout_requests_total" in httpx.get(url + "/metrics").text
    assert "tf-zoneout playground" in httpx.get(url + "/").text
    assert httpx.post(f"{url}/v1/models/{LM}/score", json={"text": 3}).status_code == 422


def test_playground_in_headless_chromium(live_server):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    server = live_server
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page()
        page.goto(server.url + "/")
        page.wait_for_function("document.querySelectorAll('#model option').length >= 2")
        page.select_option("#model", LM)
        page.fill("#prompt", "the market ")
        page.fill("#max_new_tokens", "40")
        page.fill("#seed", "3")
        page.click("#generate")
        page.wait_for_function("document.getElementById('gen-status').textContent.startsWith('done')")
        assert len(page.inner_text("#generated")) == 40
        page.fill("#score-text", "the bank said")
        page.click("#score")
        page.wait_for_selector("#heatmap span.token")
        spans = page.query_selector_all("#heatmap span.token")
        assert len(spans) == len("the bank said")
        colours = {s.evaluate("e => getComputedStyle(e).backgroundColor") for s in spans}
        assert len(colours) > 1  # coloured by surprisal
        assert "bits per character" in page.inner_text("#score-status")
        browser.close()


def test_model_names_never_reach_the_file_system(model_base, tmp_path):
    # A folder that is not a valid model name is ignored; a name with a path in it is a 404.
    (tmp_path / ".hidden" / "1").mkdir(parents=True)
    with TestClient(create_app(Settings(model_base=tmp_path))) as empty:
        assert empty.get("/v1/models").json() == {"models": [], "object": "list", "data": []}
        assert empty.post("/v1/models/%2E%2E/score", json={"text": "a"}).status_code == 404
    assert Path(model_base).exists()


def test_a_request_abandoned_by_its_client_frees_its_slot(queued_server):
    server = queued_server
    long_body = {**GENERATE, "max_new_tokens": 4000}  # seconds of generation
    busy = threading.Thread(
        target=lambda: httpx.post(f"{server.url}/v1/models/{LM}/generate", json=long_body, timeout=120)
    )
    busy.start()
    time.sleep(0.3)

    def abandoned():
        with pytest.raises(httpx.TimeoutException):
            httpx.post(f"{server.url}/v1/models/{LM}/generate", json=long_body, timeout=0.5)

    quitters = [threading.Thread(target=abandoned) for _ in range(2)]
    for q in quitters:
        q.start()
    for q in quitters:
        q.join()
    time.sleep(1.0)  # the server notices the disconnects within 0.25 s
    response = httpx.post(f"{server.url}/v1/models/{LM}/score", json={"text": "the bank"}, timeout=120)
    # Score has its own queue. Generate's queue holds the running request; had the two
    # abandoned ones kept their slots, this would be a 503.
    retry = httpx.post(f"{server.url}/v1/models/{LM}/generate", json=GENERATE, timeout=120)
    assert response.status_code == 200 and retry.status_code == 200, retry.text
    busy.join()


# -- /predict: any signature, and SavedModels without tf-zoneout metadata ------------------------


def test_predict_runs_the_classifier_like_the_savedmodel(client, model_base):
    classifier = CLASSIFIER
    pixels = np.random.default_rng(1).random([3, 784], dtype=np.float32)
    answer = client.post(f"/v1/models/{classifier}/predict", json={"inputs": {"pixels": pixels.tolist()}})
    assert answer.status_code == 200, answer.text
    direct = tf.saved_model.load(str(model_base / classifier / "1")).signatures["serving_default"]
    expected = direct(pixels=tf.constant(pixels))
    assert answer.json()["outputs"]["label"] == expected["label"].numpy().tolist()
    np.testing.assert_allclose(
        answer.json()["outputs"]["probabilities"], expected["probabilities"], rtol=1e-5
    )
    info = client.get(f"/v1/models/{classifier}").json()
    assert info["signature_inputs"] == {
        "serving_default": {"pixels": {"dtype": "float32", "shape": [None, 784]}}
    }


def test_predict_runs_a_language_models_score_signature_batched(client):
    texts = ["the bank", "", "rose"]
    body = {"signature_name": "score", "inputs": {"text": texts}}
    answer = client.post(f"/v1/models/{LM}/predict", json=body)
    assert answer.status_code == 200, answer.text
    outputs = answer.json()["outputs"]
    assert outputs["num_tokens"] == [8, 0, 4]
    single = client.post(f"/v1/models/{LM}/score", json={"text": "the bank"}).json()
    assert outputs["bits_per_token"][0] == pytest.approx(single["bits_per_token"], rel=1e-5)


@pytest.fixture(scope="module")
def users_model_base(tmp_path_factory):
    """A model base holding a user's own Keras model (tz layers), exported with model.export():
    a SavedModel without metadata.json."""
    import keras

    import tf_zoneout as tz

    model = keras.Sequential(
        [keras.Input((None, 3)), tz.ZoneoutLSTM(6, zoneout_cells=0.3, seed=2), keras.layers.Dense(2)]
    )
    base = tmp_path_factory.mktemp("users") / "models"
    model.export(str(base / "my_model" / "1"), verbose=False)
    return base, model


def test_a_plain_savedmodel_is_served_through_predict_only(users_model_base):
    base, model = users_model_base
    x = np.random.default_rng(2).normal(size=[2, 5, 3]).astype(np.float32)
    with TestClient(create_app(Settings(model_base=base, poll_seconds=60))) as users_client:
        wait_healthy(users_client)
        info = users_client.get("/v1/models/my_model").json()
        assert info["kind"] == "saved_model" and info["signatures"] == ["serve", "serving_default"]
        ((key, spec),) = info["signature_inputs"]["serving_default"].items()
        assert spec == {"dtype": "float32", "shape": [None, None, 3]}
        answer = users_client.post("/v1/models/my_model/predict", json={"inputs": {key: x.tolist()}})
        assert answer.status_code == 200, answer.text
        (served,) = answer.json()["outputs"].values()
        np.testing.assert_allclose(served, model(x, training=False).numpy(), rtol=1e-5, atol=1e-6)
        refused = users_client.post("/v1/models/my_model/generate", json={"prompt": "a"})
        assert refused.status_code == 404 and "/predict" in refused.json()["detail"]
        assert users_client.post("/v1/models/my_model/score", json={"text": "a"}).status_code == 404
        assert info["operations"] == ["predict"]


@pytest.mark.parametrize(
    "body, message",
    [
        ({"inputs": {"image": [[0.0] * 784]}}, "takes inputs ['pixels']"),
        ({"inputs": {"pixels": [[True] * 784]}}, "float32; got bool"),
        ({"inputs": {"pixels": [["0"] * 784]}}, "float32; got str"),
        ({"inputs": {"pixels": [[0.0] * 5]}}, r"shape [None, 784]; got [1, 5]"),
        ({"inputs": {"pixels": [[0.0] * 784, [0.0]]}}, "does not convert"),
        ({"inputs": {"pixels": 0.5}}, "shape [None, 784]; got []"),
    ],
)
def test_predict_inputs_that_do_not_fit_get_400_saying_why(client, body, message):
    classifier = CLASSIFIER
    answer = client.post(f"/v1/models/{classifier}/predict", json=body)
    assert answer.status_code == 400, answer.text
    assert message in answer.json()["detail"]


def test_predict_with_a_signature_the_model_lacks_is_404_naming_its_signatures(client):
    """What a model does not offer is 404 (the service's rule), as for an operation it lacks."""
    body = {"inputs": {"pixels": [[0.0] * 784]}, "signature_name": "score"}
    answer = client.post(f"/v1/models/{CLASSIFIER}/predict", json=body)
    assert answer.status_code == 404, answer.text
    assert "has no signature 'score' (it has serving_default)" in answer.json()["detail"]


# -- the OpenAI-compatible API, through the official openai SDK -------------------------------------


@pytest.fixture(scope="module")
def openai_client(live_server):
    openai = pytest.importorskip("openai")
    return openai.OpenAI(base_url=f"{live_server.url}/v1", api_key="unused", max_retries=0, timeout=60)


def test_chat_clients_and_unknown_v1_routes_get_openais_envelope_with_the_way_out(openai_client, live_server):
    import openai

    with pytest.raises(openai.NotFoundError) as raised:
        openai_client.chat.completions.create(model=LM, messages=[{"role": "user", "content": "hi"}])
    assert "completion models" in raised.value.message and "/v1/completions" in raised.value.message
    other = httpx.post(f"{live_server.url}/v1/embeddings", json={"model": LM, "input": "a"})
    assert other.status_code == 404 and other.json()["error"]["type"] == "not_found_error"


def test_openais_other_fields_are_accepted_and_bad_values_refused_naming_the_field(openai_client):
    """vLLM accepts every field of OpenAI's request; clients send them at their defaults (LangChain
    sends both penalties, always). A value out of range is 400 naming the field, and an unknown model
    is 404 whatever else the body holds."""
    import openai

    defaults = dict(frequency_penalty=0, presence_penalty=0, best_of=1, logit_bias={}, suffix="", user="u")
    plain = openai_client.completions.create(model=LM, prompt="the ", max_tokens=8, seed=3)
    same = openai_client.completions.create(model=LM, prompt="the ", max_tokens=8, seed=3, **defaults)
    assert same.choices[0].text == plain.choices[0].text
    for field, value in [("frequency_penalty", 2.5), ("presence_penalty", -3.0), ("best_of", 9),
                         ("logit_bias", {"3": 500.0}), ("logit_bias", {"e": 1.0}),
                         ("logit_bias", {"50": 1.0}),
                         ("suffix", "end"), ("prompt", [50])]:  # fmt: skip
        arguments = {"prompt": "the ", field: value}
        with pytest.raises(openai.BadRequestError) as raised:
            openai_client.completions.create(model=LM, max_tokens=4, **arguments)
        assert raised.value.body["param"].split(".")[0] == field, (field, raised.value.body)
    with pytest.raises(openai.BadRequestError, match="at least n"):
        openai_client.completions.create(model=LM, prompt="a", n=3, best_of=2)
    with pytest.raises(openai.BadRequestError, match="cannot be streamed"):
        openai_client.completions.create(model=LM, prompt="a", best_of=2, stream=True)
    with pytest.raises(openai.NotFoundError):
        openai_client.completions.create(model="nope", prompt="a", max_tokens=4, frequency_penalty=9.0)
    events = list(
        openai_client.completions.create(
            model=LM, prompt="the ", max_tokens=8, seed=3, stream=True, stream_options={"include_usage": True}
        )
    )
    assert "".join(e.choices[0].text for e in events if e.choices) == plain.choices[0].text
    assert events[-1].choices == [] and events[-1].usage.completion_tokens == 8


def test_penalties_logit_bias_and_best_of_choose_as_openai_defines_them(openai_client, live_server):
    greedy = dict(model=LM, prompt="the ", max_tokens=16, temperature=0)
    plain = openai_client.completions.create(**greedy).choices[0].text
    penalized = openai_client.completions.create(**greedy, frequency_penalty=2.0).choices[0].text
    assert len(set(penalized)) > len(set(plain))  # the smoke model repeats itself; the penalty stops it
    present = openai_client.completions.create(**greedy, presence_penalty=2.0).choices[0].text
    assert len(set(present)) > len(set(plain))
    (e,) = httpx.post(
        f"{live_server.url}/models/{LM}/tokenize", json={"prompt": "e", "add_special_tokens": False}
    ).json()["tokens"]
    forced = openai_client.completions.create(**greedy, logit_bias={str(e): 100.0}, logprobs=1).choices[0]
    assert forced.text == "e" * 16 and all(v < 0 for v in forced.logprobs.token_logprobs)  # the model's
    # best_of: the n of best_of completions (seeds seed + j) with the highest log-probability per token.
    sampled = dict(model=LM, prompt="the ", max_tokens=10, seed=21, logprobs=0)
    candidates = openai_client.completions.create(**sampled, n=4).choices
    means = [np.mean(c.logprobs.token_logprobs) for c in candidates]
    best = openai_client.completions.create(**sampled, n=2, best_of=4)
    assert [c.text for c in best.choices] == [candidates[i].text for i in np.argsort(means)[::-1][:2]]
    assert best.usage.completion_tokens == 40


def test_vllms_tokenizer_endpoints_per_model_and_by_name(live_server):
    url = live_server.url
    ids = httpx.post(
        f"{url}/models/{LM}/tokenize", json={"prompt": "the\ncat", "return_token_strs": True}
    ).json()
    info = httpx.get(f"{url}/models/{LM}/tokenizer_info").json()
    assert info["eos_token"] == info["bos_token"] == "\n" and info["vocab_size"] == 50  # PTB: end of line
    assert (
        ids["token_strs"] == ["\n", "t", "h", "e", "\n", "c", "a", "t"] and ids["count"] == 8
    )  # start first
    plain = httpx.post(
        f"{url}/tokenize", json={"model": LM, "prompt": "the\ncat", "add_special_tokens": False}
    )
    assert plain.json()["tokens"] == ids["tokens"][1:]
    back = httpx.post(f"{url}/models/{LM}/detokenize", json={"tokens": ids["tokens"][1:]}).json()
    assert back == {"prompt": "the\ncat"}
    words = httpx.post(
        f"{url}/models/{WORD_LM}/tokenize", json={"prompt": "The company\nN", "add_special_tokens": False}
    )
    word_ids = words.json()["tokens"]
    assert (
        len(word_ids) == 4 and httpx.get(f"{url}/models/{WORD_LM}/tokenizer_info").json()["eos_token"] == "\n"
    )
    assert httpx.post(f"{url}/detokenize", json={"model": WORD_LM, "tokens": word_ids}).json() == {
        "prompt": "the company\nN"
    }
    # Two language models served: a request must say which; a model without a tokenizer is 404.
    for answer, status in [
        (httpx.get(f"{url}/tokenizer_info"), 400),
        (httpx.post(f"{url}/tokenize", json={"prompt": "a"}), 400),
        (httpx.post(f"{url}/models/{SEQ2SEQ}/tokenize", json={"prompt": "1+2"}), 404),
        (httpx.post(f"{url}/models/nope/detokenize", json={"tokens": [1]}), 404),
        (httpx.post(f"{url}/models/{LM}/detokenize", json={"tokens": [50]}), 400),
        (httpx.post(f"{url}/models/{LM}/tokenize", json={"model": WORD_LM, "prompt": "a"}), 400),
    ]:
        assert answer.status_code == status and answer.json()["error"]["message"], answer.text
    assert WORD_LM in httpx.get(f"{url}/tokenizer_info").json()["error"]["message"]


def test_token_id_prompts_echo_one_logprob_per_id_the_first_null(openai_client, live_server):
    text = "the company said"
    ids = httpx.post(f"{live_server.url}/models/{LM}/tokenize", json={"prompt": text}).json()["tokens"]
    echoed = openai_client.completions.create(model=LM, prompt=ids, max_tokens=0, echo=True, logprobs=1)
    (choice,) = echoed.choices
    by_text = openai_client.completions.create(model=LM, prompt=text, max_tokens=0, echo=True, logprobs=1)
    assert choice.text == "\n" + text and len(choice.logprobs.tokens) == len(ids)
    assert choice.logprobs.token_logprobs[0] is None and choice.logprobs.top_logprobs[0] is None
    # Read after the start token, the ids give the text's own log-probabilities (/score's).
    np.testing.assert_allclose(
        choice.logprobs.token_logprobs[1:], by_text.choices[0].logprobs.token_logprobs, atol=1e-5
    )
    assert echoed.usage.prompt_tokens == len(ids)
    # Generating from ids continues as from the text; a list of id lists; streamed as not.
    both = dict(model=LM, max_tokens=20, seed=4)
    from_text = openai_client.completions.create(prompt=text, **both).choices[0].text
    from_ids = openai_client.completions.create(prompt=[ids, ids[:3]], **both).choices
    assert from_ids[0].text == from_text and len(from_ids) == 2
    streamed = openai_client.completions.create(prompt=ids, stream=True, **both)
    assert "".join(e.choices[0].text for e in streamed) == from_text
    # The per-model base path serves the same completions.
    import openai

    own = openai.OpenAI(base_url=f"{live_server.url}/models/{LM}/v1", api_key="unused")
    assert own.completions.create(prompt=ids, **both).choices[0].text == from_text


def test_stacked_pads_only_narrower_rows_and_passes_a_lone_request_through():
    from tf_zoneout_serve.batching import stacked

    lone = np.arange(6, dtype=np.int32).reshape(2, 3)
    assert stacked([lone]) is lone  # a lone request (a stream's next piece) is not copied
    same = stacked([lone, lone + 10])
    np.testing.assert_array_equal(same, np.concatenate([lone, lone + 10]))
    mixed = stacked([np.ones([1, 2], np.float32), np.zeros([1, 0], np.float32), np.full([2, 4], 3.0)])
    np.testing.assert_array_equal(mixed, [[1, 1, 0, 0], [0, 0, 0, 0], [3, 3, 3, 3], [3, 3, 3, 3]])
    texts = stacked([np.array([[b"a"]], object), np.array([[b"b", b"c"]], object)])
    assert texts.tolist() == [[b"a", b""], [b"b", b"c"]]


def test_concurrent_requests_of_different_widths_batch_as_they_answer_alone(openai_client, live_server):
    """Requests merged into one model call pad to the widest row (token ids of different lengths, a
    logit_bias row beside none, token counts of a resumed piece beside a first call): each answers as
    it does alone."""
    requests = [
        dict(prompt=[24, 2, 9, 1], max_tokens=0, echo=True, logprobs=1),
        dict(prompt=[24, 2], max_tokens=0, echo=True, logprobs=1),
        dict(prompt="the ", max_tokens=20, temperature=0, logit_bias={"3": 3.0}),
        dict(prompt="the ", max_tokens=20, seed=2, frequency_penalty=1.0),
        dict(prompt=[24, 5, 5, 5, 5, 5], max_tokens=12, seed=3),
    ]

    def ask(request):
        choice = openai_client.completions.create(model=LM, **request).choices[0]
        return choice.text, choice.logprobs.token_logprobs if choice.logprobs else None

    def merged_requests() -> float:  # requests that shared a model call with another, so far
        metrics = httpx.get(f"{live_server.url}/metrics").text
        found = re.findall(
            r'zoneout_batch_size_(sum|count)\{model="' + LM + r'",signature="[a-z_]+"\} (\S+)', metrics
        )
        return sum(float(v) if kind == "sum" else -float(v) for kind, v in found)

    alone = [ask(r) for r in requests]
    before = merged_requests()
    with ThreadPoolExecutor(len(requests) * 3) as pool:
        together = list(pool.map(ask, requests * 3))
    assert merged_requests() > before  # some of them did run in one call
    for i, (text, logprobs) in enumerate(together):
        expected_text, expected_logprobs = alone[i % len(requests)]
        assert text == expected_text
        if expected_logprobs is not None:
            np.testing.assert_allclose(
                [v for v in logprobs if v is not None],
                [v for v in expected_logprobs if v is not None],
                atol=1e-5,
            )


LM_EVAL_TASKS = {
    "zoneout_choice.yaml": """task: zoneout_choice
dataset_path: json
dataset_kwargs:
  data_files:
    test: {folder}/choice.jsonl
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{context}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: label
target_delimiter: ""
metric_list:
  - metric: acc
""",
    "zoneout_text.yaml": """task: zoneout_text
dataset_path: json
dataset_kwargs:
  data_files:
    test: {folder}/text.jsonl
test_split: test
output_type: loglikelihood_rolling
doc_to_text: ""
doc_to_target: "{{{{text}}}}"
metric_list:
  - metric: bits_per_byte
  - metric: word_perplexity
""",
}
LM_EVAL_TEXTS = ["the company said it would buy the shares", "in new york stock exchange trading\nyesterday"]


def test_lm_evaluation_harness_evaluates_the_service(live_server, tmp_path):
    """lm-eval's ``local-completions`` with the remote tokenizer (vLLM's endpoints at the model's base
    path), as users run it: a multiple-choice task (loglikelihood) whose answers agree with echo
    scoring, and a rolling task whose bits_per_byte is /score's bits per character for the same texts."""
    import subprocess
    import sys

    pytest.importorskip("lm_eval")
    choices = [{"context": "the company said it", "choices": [" will", " xqzj"], "label": 0},
               {"context": "in the", "choices": [" first", " \\$$"], "label": 1}]  # fmt: skip
    (tmp_path / "choice.jsonl").write_text("".join(json.dumps(c) + "\n" for c in choices))
    (tmp_path / "text.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in LM_EVAL_TEXTS))
    for name, text in LM_EVAL_TASKS.items():
        (tmp_path / name).write_text(text.format(folder=tmp_path))
    base = f"{live_server.url}/models/{LM}/v1/completions"
    done = subprocess.run(
        [sys.executable, "-m", "lm_eval", "--model", "local-completions",
         "--model_args", f"model={LM},base_url={base},tokenizer_backend=remote",
         "--tasks", "zoneout_choice,zoneout_text", "--include_path", str(tmp_path),
         "--output_path", str(tmp_path / "out"), "--log_samples"],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    (results,) = (tmp_path / "out").rglob("results_*.json")
    found = json.loads(results.read_text())["results"]
    bits = chars = 0.0
    for text in LM_EVAL_TEXTS:
        scored = httpx.post(f"{live_server.url}/v1/models/{LM}/score", json={"text": text}).json()
        bits, chars = bits + scored["bits_per_token"] * scored["num_tokens"], chars + len(text.encode())
    assert found["zoneout_text"]["bits_per_byte,none"] == pytest.approx(bits / chars, rel=1e-5)
    # Multiple choice: each answer's log-likelihood is its tokens' echo log-probabilities after the
    # context's ids (read as given: lm-eval adds no start token before a context).
    tokenize = f"{live_server.url}/models/{LM}/tokenize"
    (samples,) = (tmp_path / "out").rglob("samples_zoneout_choice_*.jsonl")
    for line in samples.read_text().splitlines():
        sample = json.loads(line)
        for arguments, (loglikelihood, _) in zip(sample["arguments"].values(), sample["filtered_resps"]):
            ids = [
                httpx.post(tokenize, json={"prompt": arguments[k], "add_special_tokens": False}).json()[
                    "tokens"
                ]
                for k in ("arg_0", "arg_1")
            ]
            echoed = httpx.post(
                f"{live_server.url}/v1/completions",
                json={"model": LM, "prompt": ids[0] + ids[1], "max_tokens": 0, "echo": True, "logprobs": 0},
            ).json()["choices"][0]["logprobs"]["token_logprobs"]
            assert float(loglikelihood) == pytest.approx(sum(echoed[len(ids[0]) :]), abs=1e-4)


def test_langchain_drives_the_service(live_server):
    """LangChain's own OpenAI classes (langchain-openai), as users call them: invoke, stream, batch and
    ainvoke give the service's completions; ChatOpenAI gets the service's way out."""
    import asyncio

    langchain_openai = pytest.importorskip("langchain_openai")
    import openai

    llm = langchain_openai.OpenAI(
        base_url=f"{live_server.url}/v1", api_key="unused", model=LM, max_tokens=12, seed=3, temperature=1.0
    )
    direct = openai.OpenAI(base_url=f"{live_server.url}/v1", api_key="unused").completions.create(
        model=LM, prompt="the ", max_tokens=12, seed=3, temperature=1.0
    )
    text = direct.choices[0].text
    assert llm.invoke("the ") == text
    assert "".join(llm.stream("the ")) == text
    assert llm.batch(["the ", "the "]) == [text, text]
    assert asyncio.run(llm.ainvoke("the ")) == text
    chat = langchain_openai.ChatOpenAI(base_url=f"{live_server.url}/v1", api_key="unused", model=LM)
    with pytest.raises(openai.NotFoundError, match="/v1/completions"):
        chat.invoke("hello")


def test_the_openai_sdk_lists_the_models(openai_client, live_server):
    assert {LM, WORD_LM} <= {m.id for m in openai_client.models.list()}
    listed = httpx.get(f"{live_server.url}/v1/models").json()
    assert {m["name"] for m in listed["models"]} == {m["id"] for m in listed["data"]}  # today's fields kept


def test_the_openai_sdk_completes_reproducibly_and_streams_the_same_text(openai_client):
    first = openai_client.completions.create(model=LM, prompt="the ", max_tokens=12, seed=3)
    again = openai_client.completions.create(model=LM, prompt="the ", max_tokens=12, seed=3)
    (choice,) = first.choices
    assert (
        choice.text == again.choices[0].text and len(choice.text) == 12 and choice.finish_reason == "length"
    )
    assert first.object == "text_completion" and first.model == LM and first.id.startswith("cmpl-")
    assert first.usage.completion_tokens == 12 and first.usage.prompt_tokens == 4
    streamed = openai_client.completions.create(model=LM, prompt="the ", max_tokens=12, seed=3, stream=True)
    chunks = list(streamed)
    assert "".join(c.choices[0].text for c in chunks) == choice.text
    assert chunks[-1].choices[0].finish_reason == "length"


def test_a_long_completion_streams_piece_by_piece_with_its_logprobs(openai_client):
    # 40 characters in pieces of ZONEOUT_STREAM_CHUNK_TOKENS (16): three model calls per choice.
    events = openai_client.completions.create(
        model=LM, prompt="the ", max_tokens=40, seed=5, n=2, logprobs=1, echo=True, stream=True
    )
    by_choice: dict[int, list] = {0: [], 1: []}
    for event in events:
        (choice,) = event.choices
        by_choice[choice.index].append(choice)
    texts = []
    for pieces in by_choice.values():
        echoed, generated = pieces[0], pieces[1:]
        assert echoed.text == "the " and echoed.logprobs.tokens == list("the ")  # the prompt first
        assert len(generated) >= 3 and [p.finish_reason for p in pieces][-1] == "length"
        assert all(p.finish_reason is None for p in pieces[:-1])
        text = "".join(p.text for p in generated)
        offsets = [o for p in generated for o in p.logprobs.text_offset]
        assert len(text) == 40 and offsets == list(range(4, 44))  # offsets in the whole choice's text
        assert all(len(top) == 1 for p in generated for top in p.logprobs.top_logprobs)
        texts.append(text)
    assert texts[0] != texts[1]
    # A stop sequence the first piece holds (the first piece is the non-streamed text's start).
    whole = openai_client.completions.create(model=LM, prompt="the ", max_tokens=16, seed=5).choices[0].text
    stop = whole[10]
    request = dict(model=LM, prompt="the ", max_tokens=60, seed=5, stop=stop, stream=True)
    stopped = list(openai_client.completions.create(**request))
    assert "".join(e.choices[0].text for e in stopped) == whole[: whole.index(stop)]
    assert stopped[-1].choices[0].finish_reason == "stop"


def test_echo_scoring_through_the_sdk_equals_score(openai_client, client):
    text = "the company said"
    echoed = openai_client.completions.create(model=LM, prompt=text, max_tokens=0, echo=True, logprobs=1)
    (choice,) = echoed.choices
    scored = client.post(f"/v1/models/{LM}/score", json={"text": text}).json()
    assert choice.text == text and choice.logprobs.tokens == scored["tokens"]
    expected = [-bits * np.log(2.0) for bits in scored["token_surprisal"]]
    np.testing.assert_allclose(choice.logprobs.token_logprobs, expected, rtol=1e-6)
    assert choice.logprobs.text_offset == list(range(len(text)))
    assert all(
        len(top) == 1 and max(top.values()) >= lp - 1e-6
        for top, lp in zip(choice.logprobs.top_logprobs, expected)
    )
    nothing = openai_client.completions.create(model=LM, prompt=text, max_tokens=0)  # no echo: empty
    assert nothing.choices[0].text == "" and nothing.choices[0].finish_reason == "length"
    assert nothing.usage.completion_tokens == 0 and nothing.usage.prompt_tokens == len(text)


def test_several_prompts_several_choices_stop_sequences_and_logprobs(openai_client):
    answer = openai_client.completions.create(
        model=LM,
        prompt=["the ", "a "],
        n=2,
        max_tokens=20,
        seed=9,
        stop=["e", "a"],
        logprobs=3,
        temperature=1.5,
    )
    assert [c.index for c in answer.choices] == [0, 1, 2, 3]
    for choice in answer.choices:
        assert "e" not in choice.text and "a" not in choice.text
        assert choice.finish_reason == ("stop" if len(choice.text) < 20 else "length")
        assert len(choice.logprobs.tokens) == len(choice.text)  # char model: one token per character
        assert "".join(choice.logprobs.tokens) == choice.text
        assert all(len(top) <= 3 for top in choice.logprobs.top_logprobs)
    word = openai_client.completions.create(
        model=WORD_LM, prompt="the company", max_tokens=5, seed=1, logprobs=0
    )
    (choice,) = word.choices
    assert len(choice.logprobs.tokens) == 5 and choice.logprobs.top_logprobs is None
    offsets = choice.logprobs.text_offset
    assert all(choice.text[o:].startswith(t) for o, t in zip(offsets, choice.logprobs.tokens))


def test_each_error_class_raises_the_sdks_typed_exception(openai_client):
    import openai

    cases = [
        (openai.NotFoundError, {"model": "no_such_model", "prompt": "a"}, "model"),
        (openai.NotFoundError, {"model": CLASSIFIER, "prompt": "a"}, "model"),
        (openai.BadRequestError, {"model": LM, "prompt": "a", "max_tokens": -1}, "max_tokens"),
        (openai.BadRequestError, {"model": LM, "prompt": "a", "extra_body": {"seed": False}}, "seed"),
        (openai.BadRequestError, {"model": LM, "prompt": "a", "logprobs": 9}, "logprobs"),
    ]
    for error, arguments, param in cases:
        with pytest.raises(error) as raised:
            openai_client.completions.create(**arguments)
        assert raised.value.body["param"] == param and raised.value.body["message"]


# -- API keys ------------------------------------------------------------------------------------


def test_api_keys_guard_every_model_route_but_not_health(model_base, tmp_path):
    key_file = tmp_path / "keys"
    key_file.write_text("first-key\n\nsecond-key\n")
    for setting in ("first-key, second-key", f"@{key_file}"):
        with TestClient(create_app(Settings(model_base=model_base, api_keys=setting))) as keyed:
            wait_healthy(keyed)  # /health needs no key
            for method, path, body in (
                ("get", "/v1/models", None),
                ("get", f"/v1/models/{LM}", None),
                ("post", f"/v1/models/{LM}/generate", GENERATE),
                ("post", f"/v1/models/{LM}/generate_stream", GENERATE),
                ("post", f"/v1/models/{LM}/score", {"text": "the bank"}),
                ("post", f"/v1/models/{CLASSIFIER}/predict", {"inputs": {"pixels": [[0.0] * 784]}}),
                ("post", "/v1/completions", {"model": LM, "prompt": "a", "max_tokens": 2}),
            ):
                call = getattr(keyed, method)
                kwargs = {"json": body} if body is not None else {}
                refused = call(path, **kwargs)
                assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer", path
                wrong = call(path, headers={"Authorization": "Bearer second-ke"}, **kwargs)
                assert wrong.status_code == 401 and "second-ke" not in wrong.text  # never echoed
                assert call(path, headers={"Authorization": "Bearer second-key"}, **kwargs).status_code == 200
            assert keyed.get("/metrics").status_code == 200  # open unless ZONEOUT_METRICS_NEED_KEY
            assert keyed.get("/").status_code == 200  # the playground page asks for the key itself
            paths = keyed.get("/openapi.json").json()["paths"]
            assert "401" in paths["/v1/completions"]["post"]["responses"]
            assert paths["/v1/models/{name}/score"]["post"]["security"] == [{"HTTPBearer": []}]
    with TestClient(
        create_app(Settings(model_base=model_base, api_keys="k", metrics_need_key=True))
    ) as keyed:
        assert keyed.get("/metrics").status_code == 401
        assert keyed.get("/metrics", headers={"Authorization": "Bearer k"}).status_code == 200


def test_api_key_settings_refuse_an_unreadable_or_empty_key_file_without_showing_keys(tmp_path):
    from tf_zoneout_serve.auth import ApiKeys, exposure_warning

    with pytest.raises(ValueError, match="cannot read the key file"):
        ApiKeys.from_setting(f"@{tmp_path / 'missing'}")
    (tmp_path / "empty").write_text("\n \n")
    with pytest.raises(ValueError, match="holds no key"):
        ApiKeys.from_setting(f"@{tmp_path / 'empty'}")
    assert "secret" not in repr(Settings(model_base=tmp_path, api_keys="secret"))
    assert exposure_warning("0.0.0.0", ApiKeys()) and "ZONEOUT_API_KEYS" in exposure_warning(
        "0.0.0.0", ApiKeys()
    )
    assert exposure_warning("127.0.0.1", ApiKeys()) is None and exposure_warning("::1", ApiKeys()) is None
    assert exposure_warning("0.0.0.0", ApiKeys(["k"])) is None


def test_the_openai_sdk_with_and_without_the_right_key(model_base):
    openai = pytest.importorskip("openai")
    server = LocalServer(model_base, api_keys="sdk-key-1,sdk-key-2")
    try:
        url = f"{server.url}/v1"
        right = openai.OpenAI(base_url=url, api_key="sdk-key-2", max_retries=0, timeout=60)
        assert LM in {m.id for m in right.models.list()}
        assert right.completions.create(model=LM, prompt="the ", max_tokens=3, seed=1).choices[0].text
        wrong = openai.OpenAI(base_url=url, api_key="not-a-key", max_retries=0, timeout=60)
        with pytest.raises(openai.AuthenticationError):
            wrong.completions.create(model=LM, prompt="the ", max_tokens=3)
        with pytest.raises(openai.AuthenticationError):
            wrong.models.list()
        # LangChain and lm-eval's remote tokenizer send the key as the SDK does.
        langchain_openai = pytest.importorskip("langchain_openai")
        keyed = langchain_openai.OpenAI(base_url=url, api_key="sdk-key-1", model=LM, max_tokens=3, seed=1)
        assert (
            keyed.invoke("the ")
            == right.completions.create(model=LM, prompt="the ", max_tokens=3, seed=1).choices[0].text
        )
        with pytest.raises(openai.AuthenticationError):
            langchain_openai.OpenAI(base_url=url, api_key="not-a-key", model=LM, max_retries=0).invoke("the ")
        remote = pytest.importorskip("lm_eval.utils").RemoteTokenizer
        base = f"{server.url}/models/{LM}/v1/completions"
        assert remote(base, auth_token="sdk-key-1").encode("the") == [2, 9, 1]
        with pytest.raises(RuntimeError, match="401"):
            remote(base, auth_token="not-a-key")
    finally:
        log = server.stop()
    assert "sdk-key" not in log and "not-a-key" not in log  # keys are never logged


def test_the_playground_asks_for_the_key_of_a_keyed_server(model_base):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    server = LocalServer(model_base, api_keys="browser-key")
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page()
            page.goto(server.url + "/")
            page.wait_for_function(
                "document.getElementById('key-status').textContent.includes('needs an API key')"
            )
            assert page.query_selector_all("#model option") == []
            page.fill("#api-key", "browser-key")
            page.click("#use-key")
            page.wait_for_function("document.querySelectorAll('#model option').length >= 2")
            page.select_option("#model", LM)
            page.fill("#score-text", "the bank")
            page.click("#score")
            page.wait_for_selector("#heatmap span.token")
            assert "bits per character" in page.inner_text("#score-status")
            browser.close()
    finally:
        server.stop()
