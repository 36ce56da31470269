"""The embedded Q4_1 model runs from an F16 copy: same predictions, made once, never in the way."""

from __future__ import annotations

import logging

import numpy as np

from drift_local.config import Settings
from drift_local.engine.context import Context, ContextSettings
from drift_local.engine.f16_copy import f16_copy
from drift_local.engine.model import load_model
from drift_local.sessions.runtime import open_models


def _logits(path, tokens):
    return Context(load_model(path), 1, ContextSettings(n_ctx=128)).last_logits({0: tokens})[0].copy()


def _probabilities(logits):
    exp = np.exp(logits.astype(np.float64) - logits.max())
    return exp / exp.sum()


def test_embedded_model_runs_from_its_f16_copy_with_the_same_predictions(embedded_gguf, isolated_home):
    models = open_models(Settings())
    assert models.shared and models.llm.path.parent == (isolated_home / "models" / "embedded").resolve()
    assert "F16" in models.llm.path.name
    tokens = models.llm.tokenize("The capital of France is", special=False)
    widened, original = _logits(models.llm.path, tokens), _logits(embedded_gguf, tokens)
    # The same top token and the same top five; near-ties among those may swap with rounding.
    assert widened.argmax() == original.argmax()
    assert set(np.argsort(widened)[-5:].tolist()) == set(np.argsort(original)[-5:].tolist())
    p, q = _probabilities(widened), _probabilities(original)
    assert float(np.sum(p * np.log(p / q))) < 0.01  # nats; activations are rounded differently (q8 vs f16)


def test_the_copy_is_made_once_and_a_failure_falls_back_to_the_original(tiny_gguf, tmp_path, caplog):
    folder = tmp_path / "copies"
    first = f16_copy(tiny_gguf, folder)
    made = first.stat().st_mtime_ns
    assert first != tiny_gguf and f16_copy(tiny_gguf, folder) == first and first.stat().st_mtime_ns == made
    assert [p.name for p in folder.iterdir()] == [first.name]  # no partial file left behind
    np.testing.assert_allclose(_logits(first, [270, 280, 290]), _logits(tiny_gguf, [270, 280, 290]), atol=0.05)

    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("")
    with caplog.at_level(logging.WARNING, logger="drift_local"):
        assert f16_copy(tiny_gguf, not_a_folder / "copies") == tiny_gguf
    assert "could not write its F16 copy" in caplog.text
