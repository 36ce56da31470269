"""Unit tests for the pure-numpy Drift layer (approximation, decoding, sampling)."""

import math

import numpy as np
import pytest

from drift_local.drift.approx import (
    Fit,
    REGULARIZATION_GRID,
    Pairs,
    accuracy,
    bootstrap_weights,
    fit_bt,
    fit_length_baseline,
    fit_logreg,
    fit_paper,
    length_accuracy,
    reward_matrix,
    sign_stability,
    top_k,
)
from drift_local.drift.sampling import (
    Sampler,
    SamplerSettings,
    entropy_bits,
    log_softmax,
    softmax,
)
from drift_local.drift.steering import END_PLAUSIBILITY, REACH_PLAUSIBILITY, Decoding, drift_logits, kl_divergence
from drift_local.errors import DriftError

# --- Drift Approximation ----------------------------------------------------


def _pairs_with_total(total: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """Three pairs whose (win − lose) sums to `total` but differ individually."""
    total = np.asarray(total, dtype=np.float64)
    rng = np.random.default_rng(0)
    lose = rng.normal(size=(3, total.size))
    diffs = np.array([total, total, -total]) + np.array([[1.0], [-1.0], [0.0]]) * [1.0, 2.0, -0.5]
    return lose + diffs, lose


def test_fit_paper_is_exactly_the_papers_closed_form():
    win, lose = _pairs_with_total([3.0, -4.0, 0.0])
    fit = fit_paper(Pairs.of(win, lose))
    np.testing.assert_allclose(fit.weights, [0.6, -0.8, 0.0], atol=1e-12)
    np.testing.assert_allclose(fit.preference, np.array([3.0, -4.0, 0.0]) / 3)
    assert fit.n_pairs == 3 and fit.method == "paper" and fit.length_weight == 0.0
    rng = np.random.default_rng(3)
    win, lose = rng.normal(size=(2, 17, 41))
    total = (win - lose).sum(axis=0)
    np.testing.assert_allclose(fit_paper(Pairs.of(win, lose)).weights, total / np.linalg.norm(total), rtol=1e-12)


def test_fit_paper_is_invariant_to_reward_scale_and_shift():
    rng = np.random.default_rng(1)
    win, lose = rng.normal(size=(2, 8, 5))
    reference = fit_paper(Pairs.of(win, lose)).weights
    np.testing.assert_allclose(fit_paper(Pairs.of(250.0 * win, 250.0 * lose)).weights, reference, atol=1e-12)
    np.testing.assert_allclose(fit_paper(Pairs.of(win + 7.0, lose + 7.0)).weights, reference, atol=1e-12)


def test_reward_matrix_sum_and_mean():
    logp_attr = np.array([[-10.0, -14.0], [-3.0, -1.0], [0.0, 0.0]])
    logp_base = np.array([-12.0, -2.0, 0.0])
    n_tokens = np.array([4, 2, 0])
    np.testing.assert_allclose(
        reward_matrix(logp_attr, logp_base, n_tokens), [[2.0, -2.0], [-1.0, 1.0], [0.0, 0.0]]
    )
    np.testing.assert_allclose(
        reward_matrix(logp_attr, logp_base, n_tokens, mode="mean"),
        [[0.5, -0.5], [-0.5, 0.5], [0.0, 0.0]],
    )
    with pytest.raises(DriftError, match="unknown reward mode"):
        reward_matrix(logp_attr, logp_base, n_tokens, mode="median")


@pytest.mark.parametrize("method", [fit_paper, fit_bt, fit_logreg])
def test_degenerate_pairs_raise_clear_errors(method):
    def fit(win, lose):
        return method(Pairs.of(win, lose))

    rewards = np.array([[1.0, 2.0], [0.5, -1.0]])
    with pytest.raises(DriftError, match="no preference pairs") as empty:
        fit(np.empty((0, 2)), np.empty((0, 2)))
    assert "add more pairs" in str(empty.value)
    with pytest.raises(DriftError, match="no preference direction") as same:
        fit(rewards, rewards.copy())
    assert "add more pairs" in str(same.value)
    with pytest.raises(DriftError, match="no preference direction"):
        fit(rewards + 1e-14, rewards)  # rounding noise, not a preference
    with pytest.raises(DriftError, match="NaN or infinite"):
        fit(np.array([[1.0, np.nan]]), np.array([[0.0, 0.0]]))
    with pytest.raises(DriftError, match="NaN or infinite"):
        fit(np.array([[1.0, 0.0]]), np.array([[np.inf, 0.0]]))


def _planted_pairs(true_p: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of random reward vectors; the winner scores higher on true_p, up to logistic noise."""
    rng = np.random.default_rng(seed)
    first, second = rng.normal(size=(2, n, true_p.size))
    utility_gap = (first - second) @ true_p
    first_wins = utility_gap + rng.logistic(scale=0.3, size=n) > 0
    win = np.where(first_wins[:, None], first, second)
    lose = np.where(first_wins[:, None], second, first)
    return win, lose


@pytest.mark.parametrize("fit", [fit_paper, fit_logreg])
def test_fits_recover_a_planted_weight_vector(fit):
    true_p = np.array([0.7, -0.5, 0.0, 0.4, -0.3, 0.0])
    true_p /= np.linalg.norm(true_p)
    win, lose = _planted_pairs(true_p, n=150, seed=2)
    fitted = fit(Pairs.of(win, lose))
    assert np.linalg.norm(fitted.weights) == pytest.approx(1.0)
    assert fitted.weights @ true_p > 0.9
    big = np.abs(true_p) > 0.2
    assert np.array_equal(np.sign(fitted.weights[big]), np.sign(true_p[big]))
    assert accuracy(fitted, Pairs.of(win, lose)) > 0.8


def test_fit_bt_is_calibrated_on_planted_centered_preferences():
    """Rewards that share a per-response shift (any system prompt moves them all) plus a
    planted Bradley–Terry preference: bt recovers the preference, in reward units."""
    true_w = np.array([1.5, -1.0, 0.0, 0.8, -1.3, 0.0])  # sums to zero: centering loses nothing
    rng = np.random.default_rng(4)
    n = 400
    first, second = rng.normal(size=(2, n, 6)) + 5.0 * rng.normal(size=(2, n, 1))
    first_wins = rng.random(n) < 1 / (1 + np.exp(-(first - second) @ true_w))
    win = np.where(first_wins[:, None], first, second)
    lose = np.where(first_wins[:, None], second, first)
    pairs = Pairs.of(win, lose, groups=np.arange(n) // 4)
    fit = fit_bt(pairs)
    assert fit.method == "bt" and fit.regularization is not None and fit.length_weight == 0.0
    np.testing.assert_allclose(fit.weights, true_w, atol=0.35)  # magnitudes, not only a direction
    assert fit.weights.sum() == pytest.approx(0.0, abs=1e-9)
    assert accuracy(fit, pairs) > accuracy(fit_paper(pairs), pairs)  # the shared shift fools the closed form


def test_fit_bt_uses_length_when_it_predicts_and_falls_back_to_the_closed_form_with_one_prompt():
    rng = np.random.default_rng(5)
    n = 120
    win, lose = rng.normal(size=(2, n, 8))
    lengths = rng.integers(20, 300, size=(2, n)).astype(float)
    shorter_first = lengths[0] < lengths[1]  # this user always picks the shorter answer
    win_tokens, lose_tokens = np.where(shorter_first, lengths[0], lengths[1]), np.where(shorter_first, lengths[1], lengths[0])
    fit = fit_bt(Pairs.of(win, lose, win_tokens, lose_tokens, np.arange(n) // 6))
    assert fit.length_weight < 0
    assert accuracy(fit, Pairs.of(win, lose, win_tokens, lose_tokens)) > 0.9
    one_prompt = Pairs.of(win[:5], lose[:5], groups=np.zeros(5))
    fallback = fit_bt(one_prompt)
    gaps = (win[:5] - lose[:5]) - (win[:5] - lose[:5]).mean(axis=1, keepdims=True)
    direction = (gaps / np.sqrt((gaps**2).mean(axis=0))).sum(axis=0)
    cosine = (fallback.weights / np.sqrt((gaps**2).mean(axis=0))) @ direction
    assert cosine > 0 and fallback.regularization == REGULARIZATION_GRID[-1]


def test_sign_stability_tells_signal_from_noise():
    true_w = np.array([2.0, -2.0, 0.0, 0.0])
    rng = np.random.default_rng(6)
    n = 200
    first, second = rng.normal(size=(2, n, 4))
    first_wins = rng.random(n) < 1 / (1 + np.exp(-(first - second) @ true_w))
    pairs = Pairs.of(np.where(first_wins[:, None], first, second), np.where(first_wins[:, None], second, first), groups=np.arange(n) // 5)
    fit = fit_bt(pairs)
    stability = sign_stability(pairs, fit, 60, np.random.default_rng(0))
    assert stability[0] > 0.95 and stability[1] > 0.95
    assert min(stability[2], stability[3]) < 0.9


def test_fit_logreg_stays_finite_on_separable_data():
    win = np.array([[2.0, 0.0], [3.0, 1.0]])
    lose = np.array([[-2.0, 0.5], [-1.0, 1.0]])
    fit = fit_logreg(Pairs.of(win, lose), l2=1e-3)
    assert np.all(np.isfinite(fit.weights)) and fit.weights[0] > 0.9
    np.testing.assert_allclose(fit.preference, (win - lose).mean(axis=0))
    with pytest.raises(DriftError, match="l2 must be > 0"):
        fit_logreg(Pairs.of(win, lose), l2=0.0)


def test_top_k_orders_by_magnitude_and_breaks_ties_by_index():
    weights = np.array([0.1, -0.5, 0.5, 0.3, -0.3])
    assert top_k(weights, 4).tolist() == [1, 2, 3, 4]
    assert top_k(weights, 10).tolist() == [1, 2, 3, 4, 0]
    assert top_k(weights, 0).tolist() == []
    assert top_k(weights, -2).tolist() == []


def test_margins_and_accuracy_count_ties_as_half():
    fit = Fit(np.array([1.0, 0.0]), np.zeros(2), 4, "paper")
    win = np.array([[2.0, 5.0], [1.0, 9.0], [0.0, 0.0], [3.0, 0.0]])
    lose = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [1.0, 7.0]])
    np.testing.assert_allclose(fit.margins(Pairs.of(win, lose)), [1.0, 0.0, -1.0, 2.0])
    assert accuracy(fit, Pairs.of(win, lose)) == pytest.approx((1 + 0.5 + 0 + 1) / 4)
    with_length = Fit(np.array([1.0, 0.0]), np.zeros(2), 4, "bt", length_weight=-0.5)
    np.testing.assert_allclose(with_length.margins(Pairs.of(win, lose, [4, 2, 2, 2], [2, 2, 2, 2])), [0.0, 0.0, -1.0, 2.0])
    with pytest.raises(DriftError):
        accuracy(fit, Pairs.of(np.empty((0, 2)), np.empty((0, 2))))


def test_length_baseline():
    win_len, lose_len = np.array([10, 20, 30, 7]), np.array([5, 25, 10, 7])
    assert fit_length_baseline(win_len, lose_len) == 1.0
    assert fit_length_baseline(lose_len, win_len) == -1.0
    assert fit_length_baseline(np.array([3, 3]), np.array([3, 3])) == 0.0
    assert length_accuracy(1.0, win_len, lose_len) == pytest.approx((1 + 0 + 1 + 0.5) / 4)
    assert length_accuracy(-1.0, win_len, lose_len) == pytest.approx((0 + 1 + 0 + 0.5) / 4)


def test_bootstrap_shape_and_zero_rows_for_degenerate_resamples():
    # Two opposite pairs: a resample holding one of each has W − L = 0.
    win = np.array([[1.0, 2.0], [-1.0, -2.0]])
    lose = np.zeros((2, 2))
    boots = bootstrap_weights(Pairs.of(win, lose), n_boot=60, rng=np.random.default_rng(3))
    assert boots.shape == (60, 2)
    norms = np.linalg.norm(boots, axis=1)
    assert np.all(np.isclose(norms, 0.0) | np.isclose(norms, 1.0))
    assert np.any(norms == 0.0) and np.any(norms > 0.0)
    again = bootstrap_weights(Pairs.of(win, lose), n_boot=60, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(boots, again)
    assert bootstrap_weights(Pairs.of(win, lose), n_boot=0, rng=np.random.default_rng(3)).shape == (0, 2)


# --- Drift Decoding ---------------------------------------------------------


def _logits(k: int = 3, vocab: int = 50, seed: int = 4):
    rng = np.random.default_rng(seed)
    as32 = lambda shape: rng.normal(scale=3.0, size=shape).astype(np.float32)  # noqa: E731
    return as32(vocab), as32((k, vocab)), as32(vocab)


def test_drift_logits_matches_naive_formula_and_leaves_inputs_alone():
    h_llm, h_attr, h_base = _logits()
    weights, beta = np.array([0.6, -0.8, 0.0]), 0.5
    originals = [a.copy() for a in (h_llm, h_attr, h_base)]
    naive = h_llm.astype(np.float64) + sum(
        w / beta * (h_attr[i].astype(np.float64) - h_base) for i, w in enumerate(weights)
    )
    steered = drift_logits(h_llm, h_attr, h_base, weights, Decoding(beta))
    assert steered.dtype == np.float32 and steered.shape == h_llm.shape
    np.testing.assert_allclose(steered, naive, rtol=1e-5, atol=1e-4)
    for before, after in zip(originals, (h_llm, h_attr, h_base)):
        np.testing.assert_array_equal(before, after)


def test_drift_logits_is_an_exact_copy_when_there_is_nothing_to_add():
    h_llm, h_attr, h_base = _logits()
    for weights, beta, attrs in [
        (np.array([0.6, -0.8, 0.0]), math.inf, h_attr),
        (np.zeros(3), 1.0, h_attr),
        (np.zeros(0), 1.0, np.empty((0, h_llm.size), dtype=np.float32)),
    ]:
        steered = drift_logits(h_llm, attrs, h_base, weights, Decoding(beta))
        assert steered is not h_llm
        assert steered.tobytes() == h_llm.tobytes()


@pytest.mark.parametrize("beta", [0.0, -1.0, math.nan])
def test_decoding_rejects_non_positive_beta(beta):
    with pytest.raises(DriftError, match="beta must be > 0"):
        Decoding(beta)


def test_a_tiny_beta_is_a_clear_error_not_an_overflow():
    h_llm, h_attr, h_base = _logits()
    with pytest.raises(DriftError, match="too small"):
        drift_logits(h_llm, h_attr, h_base, np.ones(3), Decoding(1e-300))


def test_plausibility_keeps_only_tokens_the_llm_finds_plausible():
    h_llm, h_attr, h_base = _logits()
    weights, alpha = np.array([3.0, -2.0, 1.0]), 0.1
    steered = drift_logits(h_llm, h_attr, h_base, weights, Decoding(0.5, plausibility=alpha))
    probs = softmax(h_llm)
    allowed = probs >= alpha * probs.max()
    assert 1 <= allowed.sum() < h_llm.size
    assert np.all(np.isneginf(steered[~allowed]))
    naive = drift_logits(h_llm, h_attr, h_base, weights, Decoding(0.5))
    np.testing.assert_allclose(steered[allowed], naive[allowed], rtol=1e-6)


@pytest.mark.parametrize("budget", [0.05, 0.5])
def test_kl_budget_bounds_the_step_and_leaves_gentle_steering_alone(budget):
    h_llm, h_attr, h_base = _logits()
    strong = drift_logits(h_llm, h_attr, h_base, np.array([3.0, -2.0, 1.0]), Decoding(0.5))
    assert kl_divergence(h_llm, strong - h_llm) > budget  # the unbounded step overspends
    bounded = drift_logits(h_llm, h_attr, h_base, np.array([3.0, -2.0, 1.0]), Decoding(0.5, kl_budget=budget))
    spent = kl_divergence(h_llm, bounded - h_llm)
    assert budget * 0.99 <= spent <= budget * (1 + 1e-6)
    gentle_weights = np.array([1e-3, 0.0, 0.0])
    gentle = drift_logits(h_llm, h_attr, h_base, gentle_weights, Decoding(1.0, kl_budget=budget))
    np.testing.assert_array_equal(gentle, drift_logits(h_llm, h_attr, h_base, gentle_weights, Decoding(1.0)))


@pytest.mark.parametrize(
    "bad",
    [
        {"temperature": -0.1},
        {"top_p": 0.0},
        {"top_p": 1.5},
        {"min_p": 1.0},
        {"repeat_penalty": 0.0},
        {"top_k": -1},
    ],
)
def test_sampler_settings_validation(bad):
    with pytest.raises(DriftError):
        SamplerSettings(**bad)


def _draws(settings: SamplerSettings, logits: np.ndarray, n: int, history=()) -> np.ndarray:
    sampler = Sampler(settings)
    return np.array([sampler.sample(logits, history) for _ in range(n)])


def test_greedy_and_zero_temperature_pick_the_argmax():
    logits = _logits()[0]
    assert Sampler(SamplerSettings(greedy=True)).sample(logits) == int(np.argmax(logits))
    assert Sampler(SamplerSettings(temperature=0.0)).sample(logits) == int(np.argmax(logits))


def test_same_seed_gives_same_tokens():
    logits = np.zeros(1000, dtype=np.float32)
    settings = SamplerSettings(seed=123, top_p=1.0)
    first = _draws(settings, logits, 30)
    np.testing.assert_array_equal(first, _draws(settings, logits, 30))
    assert not np.array_equal(first, _draws(SamplerSettings(seed=124, top_p=1.0), logits, 30))


def test_tiny_top_p_and_top_k_one_pick_the_argmax():
    logits = _logits(vocab=300)[0]
    best = int(np.argmax(logits))
    assert set(_draws(SamplerSettings(seed=0, top_p=1e-6), logits, 50)) == {best}
    assert set(_draws(SamplerSettings(seed=0, top_k=1, top_p=1.0), logits, 50)) == {best}


def test_sampling_frequencies_follow_softmax():
    probs = np.array([0.1, 0.2, 0.3, 0.4])
    draws = _draws(SamplerSettings(seed=5, top_p=1.0), np.log(probs), 4000)
    np.testing.assert_allclose(np.bincount(draws, minlength=4) / 4000, probs, atol=0.03)


def test_min_p_drops_unlikely_tokens():
    probs = np.array([0.5, 0.3, 0.15, 0.05])  # min_p 0.2 keeps p >= 0.1
    draws = _draws(SamplerSettings(seed=6, top_p=1.0, min_p=0.2), np.log(probs), 600)
    assert set(draws) == {0, 1, 2}


def test_top_p_keeps_the_smallest_set_reaching_the_mass():
    probs = np.array([0.05, 0.5, 0.3, 0.15])  # 0.5 + 0.3 = 0.8 ≥ 0.75
    draws = _draws(SamplerSettings(seed=7, top_p=0.75), np.log(probs), 400)
    assert set(draws) == {1, 2}


def _flat_logits() -> np.ndarray:
    # The nucleus spans thousands of tokens, past the partial-sort candidates.
    return np.random.default_rng(8).normal(scale=0.5, size=20000).astype(np.float32)


def _peaked_logits() -> np.ndarray:
    # A large vocabulary whose nucleus sits among a few dozen boosted tokens.
    logits = np.random.default_rng(8).normal(size=20000).astype(np.float32)
    logits[::500] += 9.0
    return logits


@pytest.mark.parametrize("make_logits", [_flat_logits, _peaked_logits])
def test_large_vocabulary_nucleus_matches_a_full_sort(make_logits):
    logits = make_logits()
    probs = softmax(logits)
    order = np.argsort(-probs)
    needed = int(np.searchsorted(np.cumsum(probs[order]), 0.9)) + 1
    nucleus = set(order[:needed].tolist())
    drawn = set(_draws(SamplerSettings(seed=9, top_p=0.9), logits, 300).tolist())
    assert drawn <= nucleus
    assert len(drawn) > min(0.5 * needed, 200)  # spread over the nucleus, not stuck on the top


def test_top_k_ties_prefer_the_lower_token_id():
    logits = np.zeros(5000, dtype=np.float32)
    logits[[10, 20]] = 1.0
    drawn = set(_draws(SamplerSettings(seed=11, top_k=3, top_p=1.0), logits, 200).tolist())
    assert drawn == {0, 10, 20}


def test_repeat_penalty_discourages_recent_tokens_without_touching_the_input():
    logits = np.array([2.0, 1.5, -1.0], dtype=np.float32)
    original = logits.copy()
    greedy = SamplerSettings(greedy=True, repeat_penalty=2.0)
    assert Sampler(greedy).sample(logits, history=[0]) == 1  # 2.0 / 2 < 1.5
    np.testing.assert_array_equal(logits, original)
    tied = np.array([1.0, 1.0], dtype=np.float32)
    draws = _draws(SamplerSettings(seed=10, top_p=1.0, repeat_penalty=3.0), tied, 600, history=[0])
    assert np.mean(draws == 0) < 0.42  # p(0) = 1 / (1 + e^(2/3)) ≈ 0.34, not 0.5
    negative = np.array([-1.0, -1.2], dtype=np.float32)
    assert Sampler(SamplerSettings(greedy=True, repeat_penalty=1.5)).sample(negative, [0]) == 1


def test_sampler_rejects_invalid_logits():
    with pytest.raises(DriftError, match="invalid logits"):
        Sampler().sample(np.array([0.0, np.nan], dtype=np.float32))
    with pytest.raises(DriftError, match="invalid logits"):
        Sampler().sample(np.full(3, -np.inf, dtype=np.float32))


def test_entropy_softmax_and_log_softmax():
    assert entropy_bits(np.zeros(8)) == pytest.approx(3.0)
    assert entropy_bits(np.r_[np.zeros(8), np.full(4, -np.inf)]) == pytest.approx(3.0)
    assert entropy_bits(np.array([1000.0, 0.0, 0.0])) == pytest.approx(0.0, abs=1e-12)
    probs = softmax(np.array([1000.0, 1001.0]))
    np.testing.assert_allclose(probs, [1 / (1 + math.e), math.e / (1 + math.e)])
    np.testing.assert_allclose(np.exp(log_softmax(np.array([1.0, 2.0, 3.0]))).sum(), 1.0)


def test_end_bias_moves_only_the_end_tokens_and_respects_plausibility():
    h_llm, h_attr, h_base = _logits()
    end_ids = (3, 7)
    steered = drift_logits(h_llm, h_attr, h_base, np.zeros(3), Decoding(0.5), end_bias=1.0, end_ids=end_ids)
    expected = h_llm.copy()
    expected[list(end_ids)] += 2.0  # end_bias / β
    np.testing.assert_allclose(steered, expected, rtol=1e-6)
    # Under α = 0.1, ending may still be chosen after a finished sentence where it is merely
    # unlikely; never where it is implausible, and never below α inside a sentence.
    h_llm[3] = h_llm.max() - 5.0  # e^-5: below α, above END_PLAUSIBILITY
    h_llm[7] = h_llm.max() - 12.0  # e^-12: below both
    gated = drift_logits(h_llm, h_attr, h_base, np.zeros(3), Decoding(0.5, plausibility=0.1), end_bias=1.0, end_ids=end_ids, sentence_end=True)
    assert math.exp(-5.0) < 0.1 and math.exp(-5.0) > END_PLAUSIBILITY > math.exp(-12.0)
    assert np.isfinite(gated[3]) and np.isneginf(gated[7])
    inside = drift_logits(h_llm, h_attr, h_base, np.zeros(3), Decoding(0.5, plausibility=0.1), end_bias=1.0, end_ids=end_ids)
    assert np.isneginf(inside[3]) and np.isneginf(inside[7])
    assert drift_logits(h_llm, h_attr, h_base, np.zeros(3), Decoding(math.inf), end_bias=1.0, end_ids=end_ids).tobytes() == h_llm.tobytes()


def test_a_token_within_reach_may_be_chosen_below_alpha_but_not_below_the_reach():
    h_llm, h_attr, h_base = _logits()
    h_llm[3] = h_llm.max() - 3.0  # e^-3: below α = 0.1, above REACH_PLAUSIBILITY
    h_llm[5] = h_llm.max() - 3.0
    h_llm[7] = h_llm.max() - 9.0  # below both
    bias = np.zeros_like(h_llm)
    bias[[3, 5, 7]] = 1.0
    gated = drift_logits(h_llm, h_attr, h_base, np.zeros(3), Decoding(0.5, plausibility=0.1), token_bias=bias, reach=np.array([3, 7]))
    assert np.isfinite(gated[3]) and np.isneginf(gated[5]) and np.isneginf(gated[7])
    assert gated[3] == pytest.approx(h_llm[3] + 2.0)  # bias / β


def test_dry_penalizes_a_growing_repeat_and_spares_short_ones_and_line_breaks():
    from drift_local.drift.sampling import repeat_lengths

    # "5 1 2 3 9 1 2 3": writing 9 again would repeat "1 2 3 9"; 3 tokens already repeat.
    assert repeat_lengths([5, 1, 2, 3, 9, 1, 2, 3]) == {9: 3}
    assert repeat_lengths([5, 1, 2, 3, 9, 1, 2, 3], breakers=frozenset({2})) == {9: 1}  # a repeat stops at a line break
    logits = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0], dtype=np.float32)
    dry = Sampler(SamplerSettings(greedy=True, dry_multiplier=0.8))
    assert dry.sample(logits, [5, 1, 2, 3, 9, 1, 2, 3]) != 9  # 1 − 0.8 · 1.75 < 0
    assert dry.sample(logits, [5, 1, 9, 6, 1]) == 9  # a repeat of one token is free
    assert Sampler(SamplerSettings(greedy=True)).sample(logits, [5, 1, 2, 3, 9, 1, 2, 3]) == 9  # off by default
    with pytest.raises(DriftError, match="dry_multiplier"):
        SamplerSettings(dry_multiplier=-1.0)


def test_no_repeat_ngram_never_completes_an_n_gram_the_answer_holds():
    logits = np.array([3.0, 2.0, 1.0, 0.0], dtype=np.float32)
    original = logits.copy()
    loop = SamplerSettings(greedy=True, no_repeat_ngram=3)
    # "0 1 2 0 1" then 2 would repeat "0 1 2": the next best token is taken instead.
    assert Sampler(loop).sample(np.array([0.0, 1.0, 3.0, 2.0], dtype=np.float32), history=[0, 1, 2, 0, 1]) == 3
    assert Sampler(loop).sample(logits, history=[1, 2]) == 0  # too short to repeat anything
    np.testing.assert_array_equal(logits, original)
    only = np.array([-np.inf, 5.0], dtype=np.float32)
    assert Sampler(SamplerSettings(greedy=True, no_repeat_ngram=1)).sample(only, history=[1]) == 1  # nothing else left
    with pytest.raises(DriftError, match="no_repeat_ngram"):
        SamplerSettings(no_repeat_ngram=-1)
