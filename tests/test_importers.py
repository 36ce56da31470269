"""Reading preference pairs from users' files: the formats, and what happens to bad lines."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest

from drift_local.errors import DriftError
from drift_local.store import importers
from drift_local.store.importers import read_pairs
from drift_local.store.store import Pair, Store

EXAMPLES = Path(str(resources.files("drift_local.data").joinpath("example_pairs.jsonl")))


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def utterance(interaction: str, response: str, score: int, chosen: bool, user: str = "u1") -> dict:
    return {"user_id": user, "interaction_id": interaction, "user_prompt": f"question {interaction}",
            "model_response": response, "score": score, "if_chosen": chosen}


def hh(chosen_reply: str, rejected_reply: str, context: str = "\n\nHuman: Hi?") -> dict:
    return {"chosen": f"{context}\n\nAssistant: {chosen_reply}",
            "rejected": f"{context}\n\nAssistant: {rejected_reply}"}


# -- formats ----------------------------------------------------------------------------------


def test_the_shipped_examples(tmp_path):
    result = read_pairs(EXAMPLES)
    assert result.format == "pairs" and len(result.pairs) == 3 and result.skipped == []
    assert result.pairs[1].prompt == "do you think there are ufo sightings hidden from us"
    assert result.pairs[0].source.startswith("PRISM")
    assert [p.prompt for p in read_pairs(EXAMPLES, user="user1280").pairs] == [result.pairs[1].prompt]


def test_pairs_jsonl_with_optional_fields(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [
        {"prompt": "p1", "chosen": "c1", "rejected": "r1"},
        "",
        {"prompt": "p2", "chosen": "c2", "rejected": "r2", "tie": True, "source": "s", "extra": 1},
    ])
    assert read_pairs(path).pairs == [Pair("p1", "c1", "r1"), Pair("p2", "c2", "r2", tie=True, source="s")]


def test_a_json_array_of_pairs(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps([{"prompt": "p", "chosen": "c", "rejected": "r"}, {"prompt": "p"}], indent=2))
    with pytest.raises(DriftError, match="item 2: missing 'chosen'"):
        read_pairs(path)
    result = read_pairs(path, skip_bad=True)
    assert (result.pairs, result.skipped, result.unit) == ([Pair("p", "c", "r")], [(2, "missing 'chosen'")], "item")


def test_a_profile_export_reads_back(tmp_path):
    with Store(tmp_path / "drift.db") as store:
        alice = store.create_profile("alice")
        store.add_pairs(alice, [Pair("p", "c", "r", tie=True, source="s")])
        (tmp_path / "alice.json").write_text(json.dumps(store.export_profile("alice"), indent=2))
    result = read_pairs(tmp_path / "alice.json")
    assert result.format == "drift-local-export"
    assert result.pairs == [Pair("p", "c", "r", tie=True, source="s")]


def test_prism_utterances_pair_the_chosen_response_with_each_lower_score(tmp_path):
    path = write_jsonl(tmp_path / "utterances.jsonl", [
        utterance("i1", "best", 80, True),
        utterance("i1", "worse", 50, False),
        utterance("i1", "as good", 80, False),
        utterance("i1", "worst", 10, False),
        utterance("i2", "lonely", 70, False),  # no chosen response: no pairs
        utterance("i3", "mine", 90, True, user="u2"),
        utterance("i3", "theirs", 20, False, user="u2"),
    ])
    result = read_pairs(path)
    assert result.format == "prism"
    assert [(p.prompt, p.chosen, p.rejected, p.source) for p in result.pairs] == [
        ("question i1", "best", "worse", "prism:i1"),
        ("question i1", "best", "worst", "prism:i1"),
        ("question i3", "mine", "theirs", "prism:i3"),
    ]
    assert [p.rejected for p in read_pairs(path, user="u2").pairs] == ["theirs"]


def test_prism_interactions_with_two_chosen_responses_are_malformed(tmp_path):
    path = write_jsonl(tmp_path / "utterances.jsonl", [
        utterance("i1", "a", 80, True), utterance("i1", "b", 70, True), utterance("i1", "c", 10, False),
        utterance("i2", "x", 80, True), {**utterance("i2", "y", 10, False), "score": "low"},
        utterance("i2", "z", 10, False),
    ])
    with pytest.raises(DriftError, match="line 2: a second chosen response in interaction i1"):
        read_pairs(path)
    result = read_pairs(path, skip_bad=True)
    assert [(p.chosen, p.rejected) for p in result.pairs] == [("x", "z")]
    assert result.skipped == [(2, "a second chosen response in interaction i1"),
                              (5, "'score' must be a finite number, not \"low\"")]


def test_hh_transcripts_keep_the_last_human_turn_and_final_replies(tmp_path):
    context = "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Tell me a joke."
    path = write_jsonl(tmp_path / "hh.jsonl", [
        hh("Why did the chicken...", "No.", context),
        hh("Sure", "Nope", "Human: Can you help?"),  # no leading blank line, as some dumps have
        {"chosen": "\n\nHuman: A\n\nAssistant: x", "rejected": "\n\nHuman: B\n\nAssistant: y"},
    ])
    with pytest.raises(DriftError, match="line 3: 'chosen' and 'rejected' differ"):
        read_pairs(path)
    result = read_pairs(path, skip_bad=True)
    assert result.format == "hh"
    assert result.pairs == [
        Pair("Tell me a joke.", "Why did the chicken...", "No.", source="hh-rlhf"),
        Pair("Can you help?", "Sure", "Nope", source="hh-rlhf"),
    ]


# -- bad input --------------------------------------------------------------------------------


def test_malformed_lines_are_reported_by_number_and_nothing_is_read(tmp_path):
    good = {"prompt": "p", "chosen": "c", "rejected": "r"}
    path = write_jsonl(tmp_path / "p.jsonl", [
        good,
        "{not json",
        {"prompt": "p", "chosen": 3, "rejected": "r"},
        good,
        {"prompt": " ", "chosen": "c", "rejected": "r"},
        [1, 2],
        {**good, "tie": "yes"},
    ])
    with pytest.raises(DriftError) as caught:
        read_pairs(path)
    message = caught.value.message
    assert "5 malformed lines" in message and "and 2 more" in message
    assert "line 2: not valid JSON" in message and "line 3: 'chosen' must be a string, not 3" in message
    assert caught.value.hint == "fix the file or pass --skip-bad"
    result = read_pairs(path, skip_bad=True)
    assert len(result.pairs) == 2
    assert [number for number, _ in result.skipped] == [2, 3, 5, 6, 7]
    assert result.skipped[2:] == [(5, "'prompt' is empty"), (6, "not a JSON object: an array"),
                                  (7, "'tie' must be true or false, not \"yes\"")]


def test_over_long_and_non_utf8_lines_are_malformed(tmp_path, monkeypatch):
    monkeypatch.setattr(importers, "MAX_LINE_BYTES", 100)
    good = json.dumps({"prompt": "p", "chosen": "c", "rejected": "r"}).encode()
    long_line = json.dumps({"prompt": "p" * 500, "chosen": "c", "rejected": "r"}).encode()
    path = tmp_path / "p.jsonl"
    path.write_bytes(b"\n".join([good, long_line, b'{"prompt": "\xff"}', good]) + b"\n")
    result = read_pairs(path, skip_bad=True)
    assert len(result.pairs) == 2
    assert result.skipped == [(2, "over the 100-byte line limit"), (3, "not UTF-8 text")]


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_an_empty_file_is_an_error(tmp_path, content):
    path = tmp_path / "empty.jsonl"
    path.write_text(content)
    with pytest.raises(DriftError, match="no preference pairs in"):
        read_pairs(path)


def test_unknown_user_names_the_users_there(tmp_path):
    with pytest.raises(DriftError, match="no preference pairs for user 'nobody'") as caught:
        read_pairs(EXAMPLES, user="nobody")
    assert caught.value.hint == "users in the file: user1008, user1247, user1280"


def test_an_unknown_format_or_a_missing_file(tmp_path):
    path = write_jsonl(tmp_path / "other.jsonl", [{"question": "q", "answer": "a"}])
    with pytest.raises(DriftError, match="cannot tell the format"):
        read_pairs(path)
    with pytest.raises(DriftError, match="no file at"):
        read_pairs(tmp_path / "missing.jsonl")


def test_an_invalid_json_array_names_its_line(tmp_path):
    path = tmp_path / "p.json"
    path.write_text('[\n{"prompt": "p",\n oops}\n]')
    with pytest.raises(DriftError, match="not valid JSON: .* at line 3"):
        read_pairs(path)
