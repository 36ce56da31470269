"""The style read off an answer's text: its counts, its tokens, its fit and its logit bias (pure numpy)."""

import math

import numpy as np

from drift_local.drift.approx import Pairs, accuracy, fit_bt, sign_stability
from drift_local.drift.steering import Decoding, drift_logits
from drift_local.drift.style import RATE_UNIT, STYLE_NAMES, at_ceiling, ends_sentence, position, style_bias, style_rates, token_classes


def _rates(text: str, tokens: float = 100.0) -> dict[str, float]:
    return dict(zip(STYLE_NAMES, style_rates([text], [tokens])[0]))


def test_style_rates_count_each_feature_per_100_tokens():
    text = "I think it's great! Don't you? Maybe.\n- one\n- two\n3. three, in 2024 and 12 more"
    rates = _rates(text, tokens=50.0)
    assert rates == {
        "exclamations": 2.0, "questions": 2.0, "list items": 6.0, "numbers": 6.0,
        "contractions": 4.0, "first person": 2.0, "hedges": 2.0,
    }
    assert _rates("A hyphen - mid-line, my friend.")["list items"] == 0.0  # only at a line's start
    assert _rates("I'm sure I’ve seen it.")["first person"] == 2.0
    assert not style_rates(["Hi!"], [0]).any()  # an empty (unscored) answer has no rates


def test_token_classes_know_which_tokens_write_a_feature():
    pieces = ["!", " hello", "?!", "-", "\n-", " -", "7", " might", " Might", " mighty", " I", "'s", " my", "\n"]
    classes = token_classes(pieces)
    anywhere = {name: {pieces[i] for i in np.flatnonzero(row)} for name, row in zip(STYLE_NAMES, classes.anywhere)}
    line_start = {name: {pieces[i] for i in np.flatnonzero(row)} for name, row in zip(STYLE_NAMES, classes.line_start)}
    assert anywhere["exclamations"] == {"!", "?!"} and anywhere["questions"] == {"?!"}
    assert anywhere["list items"] == {"\n-"} and line_start["list items"] == {"-", " -", "7"}  # "7" opens "7. …"
    assert anywhere["numbers"] == {"7"} and anywhere["hedges"] == {" might", " Might"}
    assert anywhere["first person"] == {" I", " my"} and anywhere["contractions"] == {"'s"}


def test_a_question_opener_leads_to_a_question_only_where_a_sentence_starts():
    pieces = [" What", "What", " what", " Is", "?", " The"]
    classes = token_classes(pieces)
    questions = STYLE_NAMES.index("questions")
    leads = lambda text: {pieces[i] for i in np.flatnonzero(classes.leads(position(text))[questions])}
    assert leads("Paris is lovely.") == {" What", "What", " Is", "?"}
    assert leads("") == {" What", "What", " Is"}
    assert leads("Paris is lovely and") == {"?"}  # mid-sentence only the mark itself
    assert leads("Paris is lovely. What") == set()  # "What?" closes no question


def test_a_question_opener_earns_the_question_reward_only_until_the_answer_holds_a_question():
    pieces = [" What", "What", " what", " Is", "?", " The"]
    classes = token_classes(pieces)
    questions = STYLE_NAMES.index("questions")
    weights = np.zeros(len(STYLE_NAMES))
    weights[questions] = 2.0
    bias = lambda text, missing: style_bias(weights, classes, 100.0, at=position(text), missing=missing)
    np.testing.assert_allclose(bias("Paris is lovely.", [questions]), [2.0, 2.0, 0, 2.0, 2.0, 0])
    np.testing.assert_allclose(bias("Paris is lovely. Is it so?", []), [0, 0, 0, 0, 2.0, 0])  # one question held: the mark alone
    np.testing.assert_allclose(bias("Paris is lovely and", [questions]), [0, 0, 0, 0, 2.0, 0])  # mid-sentence: no opener
    np.testing.assert_allclose(bias("", [questions]), [0, 0, 0, 0, 0, 0])  # the answer does not open with a question
    np.testing.assert_allclose(bias("Paris is lovely. Is it", [questions]), [0, 0, 0, 0, 0, 0])  # no "Is it?"
    weights[questions] = -2.0  # a disliked feature has no leads, and costs wherever it is written
    np.testing.assert_allclose(bias("Paris is lovely.", [questions]), [0, 0, 0, 0, -2.0, 0])
    np.testing.assert_allclose(bias("Paris is lovely. Is it", [questions]), [0, 0, 0, 0, -2.0, 0])


def test_a_digit_after_a_digit_extends_the_number_and_earns_no_bias():
    classes = token_classes(["7", " 7", " the"])
    weights = np.zeros(len(STYLE_NAMES))
    weights[STYLE_NAMES.index("numbers")] = 2.0
    fresh = style_bias(weights, classes, 100.0, at=position("It costs"))
    inside = style_bias(weights, classes, 100.0, at=position("It costs 1"))
    np.testing.assert_allclose(fresh, [2.0, 2.0, 0.0])
    np.testing.assert_allclose(inside, [0.0, 0.0, 0.0])  # "17" is still one number: writing it earns nothing


def test_a_liked_list_puts_its_next_item_on_a_new_line_after_each_finished_sentence():
    pieces = ["\n", "\n\n", " 2", "-", " The"]
    classes = token_classes(pieces)
    weights = np.zeros(len(STYLE_NAMES))
    weights[STYLE_NAMES.index("list items")] = 2.0
    bias = lambda text: style_bias(weights, classes, 100.0, at=position(text))
    np.testing.assert_allclose(bias("1. Clean the tank. 2. Rinse it."), [2.0, 2.0, 0, 0, 0])  # not inline
    np.testing.assert_allclose(bias("1. Clean the tank.\n"), [0, 0, 2.0, 2.0, 0])  # a marker, not a blank line
    np.testing.assert_allclose(bias("1. Clean the"), [0] * 5)  # mid-sentence
    np.testing.assert_allclose(bias(""), [0, 0, 2.0, 2.0, 0])  # no blank line first
    weights[STYLE_NAMES.index("list items")] = -2.0  # a disliked list leaves line breaks alone
    np.testing.assert_allclose(bias("Clean the tank."), [0] * 5)


def test_a_disliked_contraction_costs_at_its_stem_where_do_not_is_still_a_choice():
    pieces = [" don", " Don", "'t", " do", " isn", " won", "'s"]
    classes = token_classes(pieces)
    weights = np.zeros(len(STYLE_NAMES))
    weights[STYLE_NAMES.index("contractions")] = -2.0
    bias = lambda text: style_bias(weights, classes, 100.0, at=position(text))
    np.testing.assert_allclose(bias("I"), [-2.0, -2.0, -2.0, 0, -2.0, 0, -2.0])  # "won" is a word of its own
    np.testing.assert_allclose(bias("I don"), [0] * 7)  # the "'t" completes the contraction the stem paid for
    assert _rates("I don't know, it isn't.")["contractions"] == 2 * RATE_UNIT / 100


def test_a_sentence_ends_after_its_mark_but_not_after_a_list_number_or_abbreviation():
    for text in ("The capital is Paris.", "Done!\n\n", 'He said "go."', "Why not? ", "It is **bold.**", "It fell in 1990.", "1.\nThe end."):
        assert ends_sentence(text), text
    for text in ("", "The capital is", "Steps:\n1.", "  12.", "See e.g.", "Ask Dr.", "- item one\n"):
        assert not ends_sentence(text), text


def test_style_bias_rewards_each_occurrence_by_its_share_of_an_answer():
    pieces = ["!", "-", " the"]
    classes = token_classes(pieces)
    weights = np.zeros(len(STYLE_NAMES))
    weights[STYLE_NAMES.index("exclamations")] = -2.0
    weights[STYLE_NAMES.index("list items")] = 1.0
    mid_line = style_bias(weights, classes, answer_tokens=200.0, at=position("Well, the"))
    np.testing.assert_allclose(mid_line, [-2.0 * RATE_UNIT / 200.0, 0.0, 0.0])
    np.testing.assert_allclose(style_bias(weights, classes, 200.0, at=position("Steps:\n")), [-1.0, 0.5, 0.0])
    h_llm = np.array([0.0, -1.0, -0.5], dtype=np.float32)
    steered = drift_logits(h_llm, np.zeros((0, 3)), np.zeros(3), np.zeros(0), Decoding(0.5), token_bias=mid_line)
    np.testing.assert_allclose(steered, h_llm + mid_line / 0.5)
    plain = drift_logits(h_llm, np.zeros((0, 3)), np.zeros(3), np.zeros(0), Decoding(math.inf), token_bias=mid_line)
    assert plain.tobytes() == h_llm.tobytes()


def test_a_liked_style_is_rewarded_only_up_to_the_highest_rate_its_fitted_answers_had():
    weights = np.array([2.0, 2.0, -3.0])  # two liked features, one disliked
    ceilings = np.array([5.0, 5.0, 5.0])
    # 1 in 10 tokens is 10 per 100, above 5: capped. 0 so far: a first occurrence is always rewarded.
    assert at_ceiling(weights, ceilings, [1, 0, 0], 10) == (0,)
    assert at_ceiling(weights, ceilings, [1, 1, 0], 30) == ()  # 3.3 per 100, below the ceiling
    assert at_ceiling(weights, ceilings, [2, 3, 9], 20) == (0, 1)  # a disliked feature is never capped
    assert at_ceiling(weights, np.zeros(0), [9, 9, 9], 10) == ()  # a fit from before ceilings: no cap
    # The ceilings come from every fitted answer, chosen or not.
    pairs = Pairs.of(np.zeros((2, 1)), np.zeros((2, 1)), win_style=[[1.0, 0.0], [3.0, 0.0]], lose_style=[[2.0, 0.5], [0.0, 0.0]])
    np.testing.assert_array_equal(pairs.style_ceilings(), [3.0, 0.5])


def test_fit_bt_learns_a_style_taste_the_attribute_rewards_do_not_carry():
    rng = np.random.default_rng(7)
    n = 160
    first, second = rng.normal(size=(2, n, 6))  # attribute rewards: noise
    first_style, second_style = rng.exponential(1.0, size=(2, n, len(STYLE_NAMES)))
    first_tokens, second_tokens = rng.integers(50, 250, size=(2, n)).astype(float)
    exclaim = STYLE_NAMES.index("exclamations")
    first_wins = first_style[:, exclaim] < second_style[:, exclaim]  # this user avoids exclamation marks
    as_given = Pairs.of(first, second, first_tokens, second_tokens, np.arange(n) // 4, first_style, second_style)
    pairs = as_given.swapped(~first_wins)
    fit = fit_bt(pairs)
    assert fit.style_weights is not None and fit.style_weights[exclaim] < 0
    assert np.argmax(np.abs(fit.style_weights)) == exclaim
    assert accuracy(fit, pairs) > 0.9
    assert np.all(np.abs(fit.weights) < np.abs(fit.style_weights[exclaim]))
    assert sign_stability(pairs, fit, 20, np.random.default_rng(0)).shape == (6,)
    # Without style columns the fit is the attributes-and-length model it always was.
    plain = fit_bt(Pairs.of(pairs.win, pairs.lose, pairs.win_tokens, pairs.lose_tokens, pairs.groups))
    assert plain.style_weights is None and accuracy(plain, pairs) < 0.75


def test_an_absurd_imported_style_weight_is_a_clear_error_not_nan_logits():
    import pytest

    from drift_local.errors import DriftError

    classes = token_classes(["!", " the"])
    weights = np.zeros(len(STYLE_NAMES))
    weights[STYLE_NAMES.index("exclamations")] = 1e300
    bias = style_bias(weights, classes, 200.0, at=position(""))  # float32: inf
    with pytest.raises(DriftError, match="refit the profile"):
        drift_logits(np.zeros(2, np.float32), np.zeros((0, 2)), np.zeros(2), np.zeros(0), Decoding(0.5), token_bias=bias)
