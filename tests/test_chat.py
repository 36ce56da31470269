"""Chat sessions on a real (tiny) model: history, logging, resume, compare/prefer, context limits."""

from __future__ import annotations

import numpy as np
import pytest

from drift_local.cli.chat_repl import refit_status
from drift_local.config import Settings
from drift_local.engine.context import ContextSettings
from drift_local.engine.model import load_model
from drift_local.errors import DriftError
from drift_local.store.store import Pair, Store
from drift_local.sessions.chat import ChatSession, history_from_log
from drift_local.sessions.fit import fit_status, settings_steering
from drift_local.sessions.decoder import Answer, DriftDecoder, Steering
from drift_local.sessions.runtime import Models


def session(tiny_gguf, store, n_ctx=512, with_profile=True) -> ChatSession:
    model = load_model(tiny_gguf)
    decoder = DriftDecoder(Models(model, model, model.n_vocab), 2, ContextSettings(n_ctx=n_ctx))
    profile = store.create_profile("me") if with_profile else None
    steering = Steering("You are an AI assistant.", ("concise", "humor"), ("You are concise.", "You are funny."), np.array([0.8, -0.6]))
    return ChatSession(
        store, decoder, Settings(seed=0, max_tokens=8), profile=profile, steering=steering,
        conversation_id=store.start_conversation(profile, {}),
    )


def consume(steps) -> None:
    for _ in steps:
        pass


def test_turns_are_logged_and_resumed(tiny_gguf):
    with Store.open() as store:
        chat = session(tiny_gguf, store)
        for text in ("hello", "and you?"):
            consume(chat.ask(text, Answer()))
        assert [m.role for m in chat.state.history] == ["user", "assistant"] * 2
        conversation_id, logged = store.last_conversation(chat.profile)
        assert history_from_log(logged) == chat.state.history


def test_compare_then_prefer_teaches_the_profile(tiny_gguf):
    with Store.open() as store:
        chat = session(tiny_gguf, store)
        with pytest.raises(DriftError, match="compare"):
            chat.prefer(1)
        consume(chat.ask("hello", Answer()))
        plain, drift = Answer(), Answer()
        for steps in chat.compare(plain, drift):
            consume(steps)
        chat.remember_comparison(plain, drift)
        chat.prefer(2)
        [pair] = store.list_pairs(chat.profile)
        assert (pair.prompt, pair.chosen, pair.rejected) == ("hello", drift.text, plain.text)
        _, logged = store.last_conversation(chat.profile)
        assert history_from_log(logged)[-1].content == drift.text  # the preferred answer continues the chat
        assert chat.close()


def taught_session(tiny_gguf, store) -> ChatSession:
    """A chat whose profile holds two pairs and three attributes (they score quickly), after a /compare."""
    chat = session(tiny_gguf, store)
    store.add_pairs(chat.profile, [Pair("hi", "Hello.", "HELLO!!!"), Pair("bye", "Bye.", "BYE!!!")])
    for attribute in store.profile_attributes(chat.profile)[3:]:
        store.set_attribute_enabled(chat.profile, attribute.name, False)
    consume(chat.ask("hello", Answer()))
    plain, drift = Answer(), Answer()
    for steps in chat.compare(plain, drift):
        consume(steps)
    chat.remember_comparison(plain, drift)
    return chat


def test_prefer_stores_the_pair_at_once_and_refits_in_the_background(tiny_gguf):
    with Store.open() as store:
        chat = taught_session(tiny_gguf, store)
        before = chat.steering
        stored = chat.prefer(1)
        assert stored.n_pairs == 3
        assert refit_status(chat).strip().startswith(("refitting 'me'", "refit ready"))  # the line under the prompt
        with Store.open() as other:  # committed: another connection sees it before any refit
            assert stored.pair_id in [p.id for p in other.list_pairs(other.get_profile("me"))]
        refit = chat.finished_refit(timeout=120)
        assert refit is not None and refit.error is None, refit and refit.error
        assert chat.steering is refit.steering is not before  # the next answer steers by the new fit
        assert chat.refitting() is None and chat.finished_refit() is None and refit_status(chat) is None  # said once
        assert store.latest_fit(chat.profile).n_pairs == 3
        assert chat.close()


def test_a_chat_ended_during_its_refit_keeps_the_pair_and_the_next_use_refits(tiny_gguf):
    with Store.open() as store:
        chat = taught_session(tiny_gguf, store)
        chat.prefer(2)
        assert chat.close()  # at once: the refit is stopped, or not even started
    with Store.open() as store:
        profile = store.get_profile("me")
        assert store.count_pairs(profile) == 3
        fit, stale = fit_status(store, profile, "bt", "sum")
        assert stale or fit.n_pairs == 3
        model = load_model(tiny_gguf)
        steering, _ = settings_steering(store, profile, model, Settings(attributes=2))  # what the next chat does
        assert steering is not None and store.latest_fit(profile).n_pairs == 3


def test_interrupted_answer_is_kept_and_marked(tiny_gguf):
    with Store.open() as store:
        chat = session(tiny_gguf, store)
        answer = Answer()
        steps = chat.ask("hello", answer)
        next(steps)
        steps.close()  # what Ctrl-C between tokens does
        _, logged = store.last_conversation(chat.profile)
        assert logged[-1].role == "assistant" and logged[-1].meta["stop"] == "interrupted"
        assert logged[-1].content == answer.text


def test_oldest_turns_are_dropped_to_fit_the_context(tiny_gguf):
    with Store.open() as store:
        chat = session(tiny_gguf, store, n_ctx=160)
        for text in ("hello you", "the sea", "a sky"):
            chat.fit_history(reserve=8)
            consume(chat.ask(text, Answer()))
        dropped = chat.fit_history(reserve=60)
        assert dropped >= 1 and len(chat.state.history) <= 4
        chat.state.history.append(chat.state.history[0].__class__("user", "word " * 400))
        with pytest.raises(DriftError, match="too long"):
            chat.fit_history(reserve=8)


def test_an_answer_interrupted_before_its_first_token_is_not_a_turn(tiny_gguf):
    with Store.open() as store:
        chat = session(tiny_gguf, store)
        consume(chat.ask("hello", Answer()))

        class CtrlC:  # the key pressed while the prompt is read, before the first token
            def sample(self, logits, history, breakers):
                raise KeyboardInterrupt

        chat.sampler = CtrlC()
        with pytest.raises(KeyboardInterrupt):
            consume(chat.ask("never mind", Answer()))
        assert [m.content for m in chat.state.history if m.role == "user"] == ["hello"]
        _, logged = store.last_conversation(chat.profile)
        assert [m.role for m in logged] == ["user", "assistant", "user"]  # the question is logged, no empty answer
        assert history_from_log(logged) == chat.state.history


def test_continue_keeps_beta_and_the_system_prompt(tiny_gguf):
    from drift_local.sessions.chat import open_chat

    settings = Settings(llm=str(tiny_gguf), max_tokens=4, seed=0)
    first, _, _ = open_chat(settings, system="Be brief.")
    first.set("beta", "0.25")
    consume(first.ask("hello", Answer()))
    first.close()
    again, _, notices = open_chat(settings, continue_last=True)
    assert (again.settings.beta, again.system, notices) == (0.25, "Be brief.", [])
    assert [m.content for m in again.state.history][0] == "hello"
    again.close()
    flagged, _, _ = open_chat(settings.updated(beta=2.0), continue_last=True, keep_beta=False)
    assert flagged.settings.beta == 2.0
    flagged.close()


def test_resume_by_id_takes_the_conversations_profile(tiny_gguf):
    from drift_local.sessions.chat import open_chat

    with Store.open() as store:
        store.create_profile("you")
        conversation = store.start_conversation(store.create_profile("me"), {})
        store.add_message(conversation, "user", "hi")
        store.add_message(conversation, "assistant", "hello", {"beta": 0.5})
    settings = Settings(llm=str(tiny_gguf), attributes=0)
    with pytest.raises(DriftError, match="belongs to profile 'me', not 'you'"):
        open_chat(settings, profile="you", resume=conversation)
    chat, _, _ = open_chat(settings, resume=conversation)
    assert chat.profile.name == "me" and chat.conversation_id == conversation and len(chat.state.history) == 2
    chat.close()
