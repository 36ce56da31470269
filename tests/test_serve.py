"""`drift-local serve` over real HTTP with the official `openai` client, on the embedded model.

One server (uvicorn in a thread, on a free loopback port) serves every test here; it holds
profiles fitted to two pairs on three attributes each, so scoring takes a second.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import openai
import pytest
import uvicorn

from drift_local.attributes import paper_attributes
from drift_local.config import Settings
from drift_local.engine.model import load_model
from drift_local.store.store import Pair, Store
from drift_local.server.app import bind, create_app
from drift_local.sessions.fit import steering_from_fit
from drift_local.sessions.runtime import Models
from drift_local.sessions.serve import ServeSession

pytestmark = pytest.mark.embedded

PLAIN = "smollm2-135m"
PAIRS = [
    Pair("How do I boil an egg?", "Boil it for nine minutes.", "Well, my friend, boiling an egg is a wonderful little adventure! First you fill a pot."),
    Pair("What is rain?", "Water falling from clouds.", "Rain, oh rain! It is the sky's own song, drops of water that tumble down joyfully."),
]
ATTRIBUTES = ("concise", "formal", "exclamatory")  # the same for both: their scores are cached once
PROFILES = {"terse": False, "lively": True}  # name: pairs flipped
QUESTION = [{"role": "user", "content": "Tell me about the sea."}]


class Served:
    def __init__(self, session: ServeSession, home, api_key: str | None = None):
        self.session = session
        self.home = home
        sock = bind("127.0.0.1", 0)
        self.base = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(create_app(session, api_key=api_key), log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.02)

    def client(self, api_key: str = "unused") -> openai.OpenAI:
        return openai.OpenAI(base_url=self.base + "/v1", api_key=api_key, max_retries=0, timeout=60)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def make_profiles(store: Store) -> None:
    for name, flipped in PROFILES.items():
        profile = store.create_profile(name)
        for attribute in paper_attributes().names:
            if attribute not in ATTRIBUTES:
                store.set_attribute_enabled(profile, attribute, False)
        store.add_pairs(profile, [Pair(p.prompt, p.rejected, p.chosen) if flipped else p for p in PAIRS])
    store.create_profile("empty")  # no pairs: plain decoding


@pytest.fixture(scope="module")
def served(tmp_path_factory, embedded_gguf):
    home = tmp_path_factory.mktemp("serve-home")
    with Store.open(home / "drift.db") as store:
        make_profiles(store)
    model = load_model(embedded_gguf)
    settings = Settings(n_ctx=512, attributes=3, method="paper", max_tokens=48)
    session = ServeSession(Models(model, model, model.n_vocab), settings, llm_name=PLAIN, profiles=None, store_path=home / "drift.db")
    session.start()
    server = Served(session, home)
    yield server
    server.stop()
    session.close()


def chat(client: openai.OpenAI, model: str, **kwargs):
    kwargs.setdefault("max_tokens", 12)
    return client.chat.completions.create(model=model, messages=kwargs.pop("messages", QUESTION), **kwargs)


def test_models_and_health(served):
    ids = [m.id for m in served.client().models.list()]
    assert ids == [PLAIN, "drift:empty", "drift:lively", "drift:terse"]
    assert served.client().models.retrieve("drift:terse").id == "drift:terse"
    with pytest.raises(openai.NotFoundError):
        served.client().models.retrieve("drift:nobody")
    assert httpx.get(served.base + "/health").json()["status"] == "ok"


def test_streaming_matches_non_streaming_and_answers_are_logged(served):
    client = served.client()
    whole = chat(client, "drift:terse", temperature=0)
    text = whole.choices[0].message.content
    assert text and whole.choices[0].finish_reason in ("stop", "length")
    assert whole.usage.completion_tokens <= 12 and whole.usage.prompt_tokens > 5
    chunks = list(chat(client, "drift:terse", temperature=0, stream=True, stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    logged = _wait_for_answer(served, whole.id)
    assert [(m.role, m.content) for m in logged] == [("user", QUESTION[0]["content"]), ("assistant", text)]
    assert logged[-1].meta["drift"] and logged[-1].meta["model"] == "drift:terse"
    assert [a["name"] for a in logged[-1].meta["attributes"]] and logged[-1].meta["beta"] == 0.5


def test_stop_strings_cut_the_answer(served):
    client = served.client()
    text = chat(client, PLAIN, temperature=0).choices[0].message.content
    word = text.split()[2]
    stopped = chat(client, PLAIN, temperature=0, stop=[word])
    assert stopped.choices[0].message.content == text[: text.index(word)]
    assert stopped.choices[0].finish_reason == "stop"


def test_concurrent_requests_are_each_steered_by_their_own_profile(served):
    client = served.client()
    jobs = [("drift:terse", 0.2), ("drift:lively", 0.2), (PLAIN, None), ("drift:lively", "inf")]

    def run(job):
        model, beta = job
        return chat(client, model, seed=7, max_tokens=16, extra_body={"drift": {"beta": beta}}).choices[0].message.content

    with ThreadPoolExecutor(len(jobs)) as pool:
        answers = list(pool.map(run, jobs))
    assert all(answers) and len(set(answers[:3])) == 3  # same seed, different profile: different answers
    # Alone, β = inf and a profile without pairs decode exactly as the plain model. (In a batch,
    # llama.cpp's quantized kernels round differently with the batch's shape.)
    assert run(("drift:lively", "inf")) == run((PLAIN, None)) == run(("drift:empty", None))


def _error(response: httpx.Response) -> dict:
    body = response.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


def test_bad_requests_get_openai_errors_and_the_server_keeps_serving(served):
    client = served.client()
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        chat(client, "gpt-4")
    with pytest.raises(openai.NotFoundError, match="nobody"):
        chat(client, "drift:nobody")
    with pytest.raises(openai.BadRequestError, match="n=1"):
        chat(client, PLAIN, n=2)
    with pytest.raises(openai.BadRequestError) as long_prompt:
        chat(client, PLAIN, messages=[{"role": "user", "content": "sea " * 700}])
    assert long_prompt.value.code == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError) as too_many:
        chat(client, PLAIN, max_tokens=10_000)
    assert too_many.value.code == "context_length_exceeded" and too_many.value.param == "max_tokens"
    with pytest.raises(openai.BadRequestError, match="temperature"):
        chat(client, PLAIN, temperature=-1)
    url = served.base + "/v1/chat/completions"
    malformed = httpx.post(url, content=b'{"model": "x", "messages": [', headers={"Content-Type": "application/json"})
    assert malformed.status_code == 400 and _error(malformed)["code"] == "invalid_json"
    huge = httpx.post(url, content=b'{"model": "' + b"x" * (5 << 20) + b'"}', headers={"Content-Type": "application/json"})
    assert huge.status_code == 413 and _error(huge)["code"] == "request_too_large"
    form = httpx.post(url, data={"model": PLAIN})
    assert form.status_code == 415
    assert httpx.get(served.base + "/v1/nothing").status_code == 404
    assert chat(client, PLAIN).choices[0].message.content  # still serving


def _wait_for_answer(served, answer_id: str, timeout=10.0):
    """The logged conversation, once its answer is logged (the store worker writes it just after the end)."""
    deadline = time.monotonic() + timeout
    with Store.open(served.home / "drift.db") as store:
        while True:
            logged = store.conversation_messages(int(answer_id.removeprefix("chatcmpl-")))
            if logged[-1].role == "assistant" or time.monotonic() > deadline:
                assert logged[-1].role == "assistant"
                return logged
            time.sleep(0.05)


def _wait_idle(served, timeout=10.0) -> None:
    deadline = time.monotonic() + timeout
    while served.session.health()["active"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert served.session.health()["active"] == 0


def test_a_client_that_disconnects_mid_stream_frees_its_answer(served):
    body = {"model": "drift:lively", "messages": QUESTION, "max_tokens": 400, "stream": True}
    with httpx.stream("POST", served.base + "/v1/chat/completions", json=body) as response:
        lines = response.iter_lines()
        first = json.loads(next(line for line in lines if line.startswith("data:"))[5:])
    _wait_idle(served)  # cancelled long before 400 tokens
    logged = _wait_for_answer(served, first["id"])
    assert logged[-1].meta["stop"] == "interrupted"
    assert logged[-1].meta["tokens"] < 400
    assert chat(served.client(), "drift:lively").choices[0].message.content  # the next request works


def test_preferences_are_stored_then_steer_the_next_request(served):
    client = served.client()
    url = served.base + "/v1/preferences"
    first = chat(client, "drift:terse", seed=1)
    second = chat(client, PLAIN, seed=2)
    by_text = httpx.post(url, json={"profile": "terse", "prompt": "Hi?", "chosen": "Hello.", "rejected": "Greetings, dear friend!"})
    assert by_text.status_code == 200 and by_text.json()["fit"] == "refitting"
    after = chat(client, "drift:terse", seed=3)  # sent after the reply: steered by the refit
    logged = _wait_for_answer(served, after.id)[-1].meta["attributes"]
    with Store.open(served.home / "drift.db") as store:
        profile = store.get_profile("terse")
        refit = next(r for r in store.fit_history(profile) if r.n_pairs == 3)
        expected = steering_from_fit(refit, store, profile, 3)
    assert [(a["name"], a["weight"]) for a in logged] == list(zip(expected.names, expected.weights.tolist()))
    by_id = httpx.post(url, json={"model": "drift:terse", "chosen_id": second.id, "rejected_id": first.id, "wait": True}, timeout=60)
    assert by_id.status_code == 200, by_id.text
    assert by_id.json() == {"object": "preference", "id": by_id.json()["id"], "profile": "terse", "pairs": 4, "fit": "updated"}
    with Store.open(served.home / "drift.db") as store:
        profile = store.get_profile("terse")
        stored = store.list_pairs(profile)[-1]
        assert (stored.prompt, stored.chosen, stored.rejected) == (QUESTION[0]["content"], second.choices[0].message.content, first.choices[0].message.content)
        assert store.latest_fit(profile).n_pairs == 4  # refit on the new pairs
    missing = httpx.post(url, json={"profile": "terse", "chosen_id": "chatcmpl-999999", "rejected": "x"})
    assert missing.status_code == 404 and _error(missing)["param"] == "chosen_id"
    assert httpx.post(url, json={"profile": "terse", "chosen": "a", "rejected": "b"}).status_code == 400  # no prompt
    assert httpx.post(url, json={"profile": "nobody", "prompt": "q", "chosen": "a", "rejected": "b"}).status_code == 404


def test_an_api_key_guards_every_endpoint(served):
    guarded = Served(served.session, served.home, api_key="s3cret")
    try:
        with pytest.raises(openai.AuthenticationError):
            guarded.client("wrong").models.list()
        assert httpx.get(guarded.base + "/health").status_code == 401
        assert [m.id for m in guarded.client("s3cret").models.list()][0] == PLAIN
    finally:
        guarded.stop()


def test_a_non_loopback_host_without_a_key_or_a_busy_port_refuses_to_start(cli):
    result = cli("serve", "--host", "0.0.0.0")
    assert result.code == 1 and "needs an API key" in result.err
    busy = bind("127.0.0.1", 0)
    busy.listen()
    try:
        result = cli("serve", "--port", str(busy.getsockname()[1]))
    finally:
        busy.close()
    assert result.code == 1 and "cannot listen" in result.err and "--port" in result.err


def test_the_command_serves_and_a_kill_after_a_preference_loses_nothing(served, tmp_path):
    """The real command: banner, a request, then kill -9 right after /v1/preferences replied."""
    env = {**os.environ, "DRIFT_LOCAL_HOME": str(served.home), "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "drift_local", "serve", "--port", "0", "--profile", "terse", "--n-ctx", "512", "-k", "3"]
    server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        url = None
        for line in server.stdout:
            if match := re.search(r"(http://127\.0\.0\.1:\d+/v1)", line):
                url = match.group(1)
                break
        assert url, "no base URL in the banner"
        client = openai.OpenAI(base_url=url, api_key="unused", max_retries=2, timeout=60)
        assert [m.id for m in client.models.list()] == [PLAIN, "drift:terse"]
        reply = httpx.post(url + "/preferences", json={"profile": "terse", "prompt": "Kill?", "chosen": "Yes.", "rejected": "No."})
        assert reply.status_code == 200
        server.send_signal(signal.SIGKILL)
        server.wait(10)
    finally:
        server.kill()
    with Store.open(served.home / "drift.db") as store:
        assert store.list_pairs(store.get_profile("terse"))[-1].prompt == "Kill?"


def test_a_client_may_connect_as_soon_as_the_address_is_known():
    sock = bind("127.0.0.1", 0)  # serve announces the address before uvicorn starts accepting
    try:
        with socket.create_connection(sock.getsockname(), timeout=2):
            pass
    finally:
        sock.close()


def test_without_the_web_extra_serve_says_what_to_install(cli, monkeypatch):
    monkeypatch.delitem(sys.modules, "drift_local.server.app")
    monkeypatch.setitem(sys.modules, "fastapi", None)  # as if not installed
    result = cli("serve")
    assert result.code == 1 and "pip install 'drift-local[serve]'" in result.err


def test_a_separate_llm_context_holds_one_sequence_per_answer(tiny_gguf, tiny_gguf_padded):
    from drift_local.drift.sampling import Sampler, SamplerSettings
    from drift_local.drift.steering import Decoding
    from drift_local.engine.template import Message
    from drift_local.engine.context import ContextSettings
    from drift_local.sessions.decoder import BatchDecoder, Request, Steering

    llm, slm = load_model(tiny_gguf), load_model(tiny_gguf_padded)
    batch = BatchDecoder(Models(llm, slm, llm.n_vocab), ContextSettings(n_ctx=256), n_seq=6, n_cells=1536, llm_seq=2, llm_cells=512)
    steering = Steering("You are an AI assistant.", ("formal",), ("You are a formal AI assistant.",), np.array([0.8]))
    requests = [Request([Message("user", f"Question {i}?")], steering, Decoding(0.5), Sampler(SamplerSettings(greedy=True)), 8) for i in range(3)]
    answers = batch.run_all(requests)  # two at a time: the LLM context has two sequences
    assert batch.llm_ctx.n_seq == 2 and batch.slm_ctx.n_seq == 6
    assert all(a.tokens or a.stop == "eos" for a in answers) and not batch.active
