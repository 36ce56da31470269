"""Drift Decoding against real models: reduction to plain decoding, steering, shared contexts."""

from __future__ import annotations

import numpy as np
import pytest

from drift_local.drift.sampling import Sampler, SamplerSettings
from drift_local.drift.steering import Decoding
from drift_local.engine.template import Message
from drift_local.engine.context import ContextSettings
from drift_local.engine.model import load_model
from drift_local.sessions.decoder import Answer, BatchDecoder, DriftDecoder, Request, Steering
from drift_local.sessions.runtime import Models

CONVERSATION = [Message("user", "Tell me about the sea.")]
SETTINGS = ContextSettings(n_ctx=256)


def models(llm_path, slm_path=None) -> Models:
    llm = load_model(llm_path)
    slm = load_model(slm_path) if slm_path else llm
    return Models(llm, slm, min(llm.n_vocab, slm.n_vocab))


def steering(weights) -> Steering:
    names = ("concise", "formal", "humor")[: len(weights)]
    prompts = tuple(f"You are a {n} AI assistant." for n in names)
    return Steering("You are an AI assistant.", names, prompts, np.asarray(weights, dtype=np.float64))


def style_taste(feature: str, weight: float, answer_tokens: float = 150.0, ceilings=np.zeros(0)) -> Steering:
    """A profile with one style weight and no attributes."""
    from drift_local.drift.style import STYLE_NAMES

    weights = np.zeros(len(STYLE_NAMES))
    weights[STYLE_NAMES.index(feature)] = weight
    return Steering("You are an AI assistant.", (), (), np.zeros(0), style_weights=weights, answer_tokens=answer_tokens, style_ceilings=ceilings)


def greedy(decoder, steer, beta=0.5, max_tokens=24, conversation=CONVERSATION, plausibility=0.0) -> Answer:
    answer = Answer()
    decoding = Decoding(beta, plausibility=plausibility)
    for _ in decoder.stream(conversation, steer, decoding=decoding, sampler=Sampler(SamplerSettings(greedy=True)), max_tokens=max_tokens, answer=answer):
        pass
    return answer


@pytest.mark.parametrize("name", ["tiny_gguf", "embedded_gguf"])
def test_drift_reduces_exactly_to_plain_decoding(name, request):
    decoder = DriftDecoder(models(request.getfixturevalue(name)), 3, SETTINGS)
    plain = greedy(decoder, None).tokens
    assert plain
    assert greedy(decoder, steering([0.6, -0.5, 0.4]), beta=float("inf")).tokens == plain
    assert greedy(decoder, steering([]), beta=0.5).tokens == plain  # a profile with no attributes


def test_zero_weights_through_every_sequence_change_nothing(tiny_gguf):
    """The full Drift path (all sequences decoded, logits combined) adds exactly zero.

    On the F32 tiny model, where exact equality of the greedy tokens is a fair demand.
    """
    decoder = DriftDecoder(models(tiny_gguf), 3, SETTINGS)
    assert greedy(decoder, steering([0.0, 0.0, 0.0]), beta=0.5).tokens == greedy(decoder, None).tokens


def test_steering_changes_the_answer(embedded_gguf):
    decoder = DriftDecoder(models(embedded_gguf), 3, SETTINGS)
    plain = greedy(decoder, None).tokens
    steered = greedy(decoder, steering([0.7, 0.7, 0.1]), beta=0.1).tokens
    assert steered != plain


def test_padded_vocabulary_slm_steers_the_llm(tiny_gguf, tiny_gguf_padded):
    decoder = DriftDecoder(models(tiny_gguf, tiny_gguf_padded), 2, SETTINGS)
    assert not decoder.models.shared and decoder.llm_ctx is not decoder.slm_ctx
    assert greedy(decoder, steering([0.5, -0.3])).tokens


def test_second_turn_reuses_every_sequence(tiny_gguf):
    decoder = DriftDecoder(models(tiny_gguf), 2, SETTINGS)
    steer = steering([0.5, -0.3])
    first = greedy(decoder, steer, max_tokens=8)
    held_before = [list(h) for h in decoder.slm_ctx.held]
    turn = CONVERSATION + [Message("assistant", first.text), Message("user", "And the sky?")]
    prompts = decoder.prompts(turn, steer)
    for seq, tokens in enumerate(v for k, v in prompts.items() if k != "llm"):
        common = next((i for i, (a, b) in enumerate(zip(held_before[seq], tokens)) if a != b), min(len(held_before[seq]), len(tokens)))
        assert common >= len(decoder.prompts(CONVERSATION, steer)["base"]) - 1  # the whole first prompt is kept


def test_stops_at_max_tokens_and_reports_why(tiny_gguf):
    decoder = DriftDecoder(models(tiny_gguf), 1, SETTINGS)
    answer = greedy(decoder, None, max_tokens=5)
    assert len(answer.tokens) <= 5 and answer.stop in ("length", "eos")


def _request(steer, beta=0.5, max_tokens=12, text="Tell me about the sea.") -> Request:
    return Request([Message("user", text)], steer, Decoding(beta), Sampler(SamplerSettings(greedy=True)), max_tokens)


def test_a_batch_writes_the_answers_one_at_a_time_would(tiny_gguf):
    """Each answer in a batch has its own steering, yet every step is one llama_decode for all."""
    jobs = [(None, "Tell me about the sea."), (steering([0.5, -0.3]), "Tell me about the sea."), (steering([-0.9, 0.2]), "And the sky?")]
    expected = []
    for steer, text in jobs:
        decoder = DriftDecoder(models(tiny_gguf), 2, SETTINGS)
        answer = Answer()
        for _ in decoder.stream([Message("user", text)], steer, decoding=Decoding(0.5), sampler=Sampler(SamplerSettings(greedy=True)), max_tokens=12, answer=answer):
            pass
        expected.append(answer.tokens)
    # Room for two answers at a time: the third waits for a free slot.
    batch = BatchDecoder(models(tiny_gguf), SETTINGS, n_seq=5, n_cells=1024)
    decodes_before = batch.slm_ctx.decode_seconds
    answers = batch.run_all([_request(steer, text=text) for steer, text in jobs])
    assert [a.tokens for a in answers] == expected
    assert batch.slm_ctx.decode_seconds > decodes_before and not batch.active
    assert sorted(batch._free[id(batch.slm_ctx)]) == list(range(5))  # every sequence given back


def test_a_cancelled_answer_frees_its_sequences_at_once(tiny_gguf):
    batch = BatchDecoder(models(tiny_gguf), SETTINGS, n_seq=4, n_cells=1024)
    first, second = _request(steering([0.5, -0.3]), max_tokens=50), _request(None, max_tokens=50)
    assert batch.admit(first)
    assert not batch.admit(_request(steering([0.5, -0.3]), max_tokens=50))  # 4 sequences: no room for a second steered answer
    batch.step()
    batch.cancel(first)
    assert first.answer.stop == "interrupted" and batch.admit(second)
    assert batch._free[id(batch.slm_ctx)] == set(range(4)) - {seq for _, seq in batch.active[0].seqs.values()}


def test_a_next_turn_decodes_only_what_the_last_answer_left_undone(tiny_gguf):
    """A finished answer's tokens stay on its free sequences; the conversation's next turn takes
    them, decodes only its new tokens, and writes what a fresh batch writes."""
    steer = steering([0.5, -0.3])
    batch = BatchDecoder(models(tiny_gguf), SETTINGS, n_seq=8, n_cells=2048)
    first = _request(steer)
    batch.run_all([first])
    turn = CONVERSATION + [Message("assistant", first.answer.text), Message("user", "And the sky?")]
    prompts = batch.roles.prompts(CONVERSATION, steer)

    def next_turn(batch: BatchDecoder) -> tuple[list[int], int]:
        before = batch.slm_ctx.decoded_tokens
        [answer] = batch.run_all([Request(turn, steer, Decoding(0.5), Sampler(SamplerSettings(greedy=True)), 12)])
        return answer.tokens, batch.slm_ctx.decoded_tokens - before

    warm, fresh = next_turn(batch), next_turn(BatchDecoder(models(tiny_gguf), SETTINGS, n_seq=8, n_cells=2048))
    assert warm[0] == fresh[0]
    assert warm[1] <= fresh[1] - sum(len(tokens) - 1 for tokens in prompts.values())



def test_a_style_taste_steers_through_the_tokens_that_write_it(embedded_gguf):
    """A profile that avoids exclamation marks drops them from an answer that has one."""
    decoder = DriftDecoder(models(embedded_gguf), 0, SETTINGS)
    wish = [Message("user", "Write a cheerful one-line birthday wish for my friend.")]
    calm = style_taste("exclamations", -5.0)

    plain = greedy(decoder, None, conversation=wish, plausibility=0.1).text
    assert "!" in plain
    steered = greedy(decoder, calm, conversation=wish, plausibility=0.1).text
    assert "!" not in steered and steered.split()[:3] == plain.split()[:3]


def test_a_liked_style_stops_being_rewarded_at_the_rate_its_fitted_answers_reached(embedded_gguf):
    """Uncapped, a strong taste for numbers writes a list of figures ("1.11 days", "1.12 days",
    ...); capped at 2 per 100 tokens it stops after the first."""
    from drift_local.drift.style import STYLE_FEATURES, STYLE_NAMES

    decoder = DriftDecoder(models(embedded_gguf), 0, SETTINGS)
    question = [Message("user", "How many days are in a year? Give figures.")]
    count = STYLE_FEATURES[STYLE_NAMES.index("numbers")].count

    def answer(ceilings):
        taste = style_taste("numbers", 8.0, ceilings=ceilings)
        return greedy(decoder, taste, conversation=question, plausibility=0.1, max_tokens=60).text

    uncapped, capped = answer(np.zeros(0)), answer(np.full(len(STYLE_NAMES), 2.0))
    assert count(uncapped) >= 8 and 1 <= count(capped) < count(uncapped) / 2
    assert capped.split()[:2] == uncapped.split()[:2]  # the same start: the first figure is still rewarded


def test_a_liked_style_the_llm_rarely_writes_is_within_reach(embedded_gguf, monkeypatch):
    """"!" after "Canberra" is below α for SmolLM2, yet a taste for it writes one."""
    from drift_local.drift import steering as drift_steering

    decoder = DriftDecoder(models(embedded_gguf), 0, SETTINGS)
    capital = [Message("user", "What is the capital of Australia?")]
    lively = style_taste("exclamations", 6.0)

    assert "!" not in greedy(decoder, None, conversation=capital, plausibility=0.1).text
    assert greedy(decoder, lively, conversation=capital, plausibility=0.1).text.endswith("Canberra!")
    monkeypatch.setattr(drift_steering, "REACH_PLAUSIBILITY", 0.1)  # no reach below α
    assert "!" not in greedy(decoder, lively, conversation=capital, plausibility=0.1).text


def test_a_taste_for_questions_asks_one_after_the_answers_first_sentence(embedded_gguf):
    """SmolLM2 asks nothing about tea; a question opener earns the question's reward until the
    answer holds one, so a taste for questions asks one, and not as the answer's first words."""
    decoder = DriftDecoder(models(embedded_gguf), 0, SETTINGS)
    tea = [Message("user", "How do I make a good cup of tea?")]
    curious = style_taste("questions", 3.0, answer_tokens=100.0)

    plain = greedy(decoder, None, conversation=tea, plausibility=0.1, max_tokens=70).text
    asked = greedy(decoder, curious, conversation=tea, plausibility=0.1, max_tokens=70).text
    assert "?" not in plain and "?" in asked
    first_sentence = plain.split(". ")[0]
    assert asked.startswith(first_sentence)
    question = asked[: asked.index("?")].split(". ")[-1]
    assert len(question.split()) >= 3, question  # a question, not a bare "What?"


def test_a_taste_for_lists_puts_each_item_on_its_own_line(embedded_gguf):
    """SmolLM2, steered toward list items, numbers them inline ("1. Buy in bulk: … 2. Use
    coupons: 3. …"), which is one list item; a line break after a finished sentence earns the
    list's reward, so the items go on their own lines."""
    from drift_local.drift.style import STYLE_FEATURES, STYLE_NAMES

    decoder = DriftDecoder(models(embedded_gguf), 0, SETTINGS)
    groceries = [Message("user", "How can I save money on groceries?")]
    listing = style_taste("list items", 3.0, answer_tokens=100.0)

    listed = greedy(decoder, listing, conversation=groceries, plausibility=0.1, max_tokens=90).text
    assert STYLE_FEATURES[STYLE_NAMES.index("list items")].count(listed) >= 4, listed
