"""The engine against real GGUF models: tiny generated ones and the embedded SmolLM2."""

from __future__ import annotations

import numpy as np
import pytest

from drift_local.engine.template import ChatFormat, Message
from drift_local.engine.context import Context, ContextSettings, PromptTooLong
from drift_local.engine.model import load_model
from drift_local.engine.plan import build_plan
from drift_local.engine.scoring import ScoreRequest, Scorer, log_softmax_at
from drift_local.engine.tokenizer_check import shared_vocab_size
from drift_local.errors import DriftError
from gguf_factory import write_tiny_gguf

MODELS = ["tiny_gguf", "embedded_gguf"]
SYSTEM = "You are a concise AI assistant."


@pytest.fixture(params=MODELS)
def model(request):
    return load_model(request.getfixturevalue(request.param))


def prompt_tokens(model, text="Tell me about the sea."):
    return ChatFormat(model).prompt_tokens(SYSTEM, text)


def test_same_prompt_in_two_sequences_gives_same_logits(model):
    tokens = prompt_tokens(model)
    ctx = Context(model, 2, ContextSettings(n_ctx=256))
    shared = ctx.last_logits({0: tokens, 1: tokens}).copy()
    ctx.clear()
    alone = ctx.last_logits({1: tokens}).copy()
    np.testing.assert_allclose(shared[0], shared[1], atol=1e-4)
    np.testing.assert_allclose(shared[1], alone[0], atol=1e-3)


def test_batched_step_equals_single_steps(model):
    a = prompt_tokens(model, "Tell me about the sea.")
    b = prompt_tokens(model, "Write a poem about you.")
    batched = Context(model, 2, ContextSettings(n_ctx=256))
    batched.last_logits({0: a, 1: b})
    step = batched.last_logits({0: a + [7], 1: b + [9]}).copy()  # one token each, one llama_decode
    for seq, tokens in ((0, a + [7]), (1, b + [9])):
        single = Context(model, 1, ContextSettings(n_ctx=256))
        single.last_logits({0: tokens[:-1]})
        alone = single.last_logits({0: tokens}).copy()
        np.testing.assert_allclose(step[seq], alone[0], atol=2e-3, rtol=1e-3)


def test_streams_give_each_sequence_the_logits_it_has_alone(embedded_gguf):
    """Per-sequence KV streams: on a quantized model, prompts of different lengths decoded in
    one call give exactly the logits each gives alone (in one unified cache they move by up
    to a logit here, so an answer would depend on the answers sharing its steps)."""
    model = load_model(embedded_gguf)
    rng = np.random.default_rng(0)
    targets = {seq: rng.integers(100, 5000, size=n).tolist() for seq, n in enumerate([36, 26, 30, 27, 34, 29])}
    together = Context(model, len(targets), ContextSettings(n_ctx=128), unified=False).last_logits(targets)
    for seq, tokens in targets.items():
        alone = Context(model, 1, ContextSettings(n_ctx=128), unified=False).last_logits({0: tokens})
        np.testing.assert_array_equal(together[seq], alone[0])
    streams = build_plan({0: 0, 1: 0}, {1: [1, 2], 0: [1, 3]}, {}, share=False)
    assert [(n.seqs, n.token) for n in streams] == [([0], 1), ([0], 3), ([1], 1), ([1], 2)]  # no shared cells, in id order


def test_prefix_shared_between_sequences_is_decoded_once():
    common, left, right = [1, 2, 3, 4], [5, 6], [7, 8, 9]
    plan = build_plan({0: 0, 1: 0}, {0: common + left, 1: common + right}, {})
    assert len(plan) == len(common) + len(left) + len(right)
    assert [n.seqs for n in plan[: len(common)]] == [[0, 1]] * len(common)
    # sequences that hold different tokens never share, even if their new tokens agree
    plan = build_plan({0: 1, 1: 1}, {0: [1, 5], 1: [2, 5]}, {})
    assert len(plan) == 2


def test_multi_turn_feeds_only_new_tokens(tiny_gguf):
    model = load_model(tiny_gguf)
    ctx = Context(model, 1, ContextSettings(n_ctx=256))
    first = prompt_tokens(model)
    ctx.last_logits({0: first})
    later = first + [20, 21, 22]
    plan = build_plan({0: len(first)}, {0: later}, {})
    assert [n.token for n in plan] == [20, 21, 22]
    fresh = Context(model, 1, ContextSettings(n_ctx=256)).last_logits({0: later}).copy()
    np.testing.assert_allclose(ctx.last_logits({0: later})[0], fresh[0], atol=1e-2)  # f16 KV cache


def reference_logprobs(model, tokens, start, n_batch):
    """One sequence, no sharing: logits of every position, log-softmax by hand."""
    ctx = Context(model, 1, ContextSettings(n_ctx=512, n_batch=n_batch))
    rows = []
    ctx.ingest({0: tokens}, {0: range(start - 1, len(tokens) - 1)}, lambda nodes, r: rows.append(r.copy()))
    logits = np.concatenate(rows).astype(np.float64)
    logz = np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1)) + logits.max(1)
    return logits[np.arange(len(logits)), tokens[start:]] - logz


def token_by_token_logprobs(model, tokens, start):
    ctx = Context(model, 1, ContextSettings(n_ctx=512))
    out = []
    for pos in range(start, len(tokens)):
        row = ctx.last_logits({0: tokens[:pos]})[0].astype(np.float64)
        out.append(row[tokens[pos]] - (row.max() + np.log(np.exp(row - row.max()).sum())))
    return np.array(out)


@pytest.mark.parametrize("name", MODELS)
def test_response_logprob_matches_independent_computation(name, request):
    model = load_model(request.getfixturevalue(name))
    chat = ChatFormat(model)
    prompt, responses = "Tell me about the sea.", ("The sea is vast and blue.", "I like it.")
    scored = Scorer(Context(model, 8, ContextSettings(n_ctx=512)), chat).score(
        [ScoreRequest(SYSTEM, prompt, responses)]
    )[0]
    head = chat.prompt_tokens(SYSTEM, prompt)
    for response, result in zip(responses, scored):
        tokens = head + model.tokenize(response, special=False) + [chat.end_of_turn]
        same_batch = reference_logprobs(model, tokens, len(head), n_batch=512)
        np.testing.assert_allclose(result.token_logprobs, same_batch, atol=1e-4)
        assert result.logprob == pytest.approx(same_batch.sum(), abs=1e-3)
        stepwise = token_by_token_logprobs(model, tokens, len(head))
        # The f16 KV cache bounds agreement on F32 weights; Q4_1 kernels also differ by batch size.
        tolerance = 1e-2 if name == "tiny_gguf" else 0.5
        np.testing.assert_allclose(result.token_logprobs, stepwise, atol=tolerance)


def test_whole_responses_end_with_the_turn_end_and_capped_ones_do_not(tiny_gguf):
    model = load_model(tiny_gguf)
    chat = ChatFormat(model)
    assert chat.end_of_turn == model.tokenize("<|im_end|>")[0]
    response = "the sea is a sea."
    n_response = len(model.tokenize(response, special=False))
    request = [ScoreRequest(SYSTEM, "hello you", (response,))]
    context = Context(model, 2, ContextSettings(n_ctx=128))
    whole = Scorer(context, chat).score(request)[0][0]
    capped = Scorer(context, chat, max_response_tokens=n_response - 1).score(request)[0][0]
    assert whole.n_tokens == n_response + 1
    assert capped.n_tokens == n_response - 1
    np.testing.assert_allclose(capped.token_logprobs, whole.token_logprobs[: n_response - 1], atol=1e-5)


def test_scoring_many_prompts_in_waves_equals_one_at_a_time(tiny_gguf):
    model = load_model(tiny_gguf)
    chat = ChatFormat(model)
    requests = [
        ScoreRequest(f"You are assistant {i}.", "hello you", ("the sea is a sea.", "I am AI."))
        for i in range(6)
    ]
    small = Scorer(Context(model, 4, ContextSettings(n_ctx=128), n_cells=160), chat).score(requests)
    for request, got in zip(requests, small):
        alone = Scorer(Context(model, 2, ContextSettings(n_ctx=128)), chat).score([request])[0]
        for a, b in zip(got, alone):
            assert a.logprob == pytest.approx(b.logprob, abs=1e-3)


def test_log_softmax_at_matches_float64_reference():
    rows = np.array([[0.0, 1.0, 2.0], [1000.0, 0.0, -1000.0]], dtype=np.float32)
    expected = [2.0 - np.log(np.exp([0.0, 1.0, 2.0]).sum()), 0.0]
    np.testing.assert_allclose(log_softmax_at(rows, np.array([2, 0])), expected, atol=1e-7)
    rng = np.random.default_rng(0)
    big = (rng.standard_normal((40, 128256)) * 8).astype(np.float32)  # a Llama 3 sized vocabulary
    tokens = rng.integers(0, big.shape[1], 40)
    exact = big.astype(np.float64)
    reference = exact[np.arange(40), tokens] - np.log(np.exp(exact - exact.max(1, keepdims=True)).sum(1)) - exact.max(1)
    np.testing.assert_allclose(log_softmax_at(big, tokens), reference, atol=1e-6)


def test_model_is_loaded_once(tiny_gguf, tmp_path):
    link = tmp_path / "link.gguf"
    link.symlink_to(tiny_gguf)
    assert load_model(tiny_gguf) is load_model(link)


def test_tokenizer_check(tiny_gguf, tiny_gguf_other_vocab, tiny_gguf_padded, embedded_gguf):
    tiny = load_model(tiny_gguf)
    assert shared_vocab_size(tiny, tiny) == tiny.n_vocab
    assert shared_vocab_size(load_model(tiny_gguf_padded), tiny) == tiny.n_vocab
    for other in (tiny_gguf_other_vocab, embedded_gguf):
        with pytest.raises(DriftError, match="do not share a tokenizer"):
            shared_vocab_size(tiny, load_model(other))


def test_bad_model_files_give_clear_errors(tmp_path, tiny_gguf):
    with pytest.raises(DriftError, match="no such model file"):
        load_model(tmp_path / "missing.gguf")
    text = tmp_path / "notes.gguf"
    text.write_text("hello")
    with pytest.raises(DriftError, match="not a GGUF"):
        load_model(text)
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(tiny_gguf.read_bytes()[: tiny_gguf.stat().st_size // 2])
    with pytest.raises(DriftError, match="cannot load model"):
        load_model(truncated)


def test_prompt_longer_than_context_is_refused(tiny_gguf):
    ctx = Context(load_model(tiny_gguf), 1, ContextSettings(n_ctx=32))
    with pytest.raises(PromptTooLong):
        ctx.last_logits({0: list(range(10, 50))})
    assert ctx.last_logits({0: [10, 11]}).shape == (1, ctx.n_vocab)  # still usable


def test_chat_template_is_sandboxed_and_dated(tmp_path):
    evil = "{{ ''.__class__.__mro__[1].__subclasses__() }}"
    model = load_model(write_tiny_gguf(tmp_path / "evil.gguf", chat_template=evil))
    with pytest.raises(DriftError, match="template"):
        ChatFormat(model).render([Message("user", "hi")])
    dated = "{{ strftime_now('%Y-%m-%d') }}|{{ date_string }}|{{ messages[0]['content'] }}"
    model = load_model(write_tiny_gguf(tmp_path / "dated.gguf", chat_template=dated))
    assert ChatFormat(model).render([Message("user", "hi")]) == "2024-07-26|26 Jul 2024|hi"


def test_model_without_template_uses_visible_fallback(tmp_path):
    model = load_model(write_tiny_gguf(tmp_path / "bare.gguf", chat_template=None))
    chat = ChatFormat(model)
    assert chat.uses_fallback
    assert chat.render([Message("user", "hi")]).endswith("User: hi\n\nAssistant:")
    assert chat.end_of_turn is None  # the fallback closes a turn with plain text
