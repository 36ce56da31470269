"""`drift-local profile ...`, driven through the real entry point with a throwaway home."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from drift_local.attributes import paper_attributes
from drift_local.store.store import Store

EXAMPLES = str(resources.files("drift_local.data").joinpath("example_pairs.jsonl"))
NAMES = paper_attributes().names


def assert_one_line_error(result, text: str) -> None:
    assert result.code == 1
    lines = result.err.strip().splitlines()
    assert lines[0].startswith("error: ") and text in lines[0], result.err
    assert len(lines) <= 2 and "Traceback" not in result.err  # the message, then maybe a hint


def save_fit(name: str) -> None:
    """A fit as `drift-local fit` would leave it: the weight falls from +1 to −0.5 along the
    paper order, and only the first attribute's sign is unstable."""
    with Store.open() as store:
        profile = store.get_profile(name)
        n = len(NAMES)
        store.save_fit(profile, model_id="smollm2-135m", method="bt", reward="sum", n_pairs=3,
                       names=NAMES, weights=[1.0 - 1.5 * i / (n - 1) for i in range(n)],
                       preference=[1.5 - 3 * i / (n - 1) for i in range(n)],
                       sign_stability=[0.6] + [1.0] * (n - 1), regularization=10.0, length_weight=-0.01,
                       style_weights={"exclamations": -0.5, "list items": 0.25, "numbers": 0.0},
                       style_ceilings={"exclamations": 1.5, "list items": 4.0, "numbers": 2.0})


def test_create_import_list(cli):
    assert cli("profile", "create", "alice").code == 0
    imported = cli("profile", "import", "alice", EXAMPLES)
    assert imported.code == 0 and "imported 3 pairs into 'alice'" in imported.out
    again = cli("profile", "import", "alice", EXAMPLES)
    assert "imported 0 pairs" in again.out and "3 already there" in again.out
    listed = json.loads(cli("profile", "list", "--json").out)
    assert [(p["name"], p["n_pairs"], p["last_fit"]) for p in listed] == [("alice", 3, None)]
    assert "alice" in cli("profile", "list").out


def test_import_creates_the_profile_unless_told_not_to(cli):
    refused = cli("profile", "import", "bob", EXAMPLES, "--no-create")
    assert_one_line_error(refused, "no profile named 'bob'")
    assert cli("profile", "import", "bob", EXAMPLES, "--user", "user1008").code == 0
    assert json.loads(cli("profile", "list", "--json").out)[0]["n_pairs"] == 1


def test_a_bad_file_imports_nothing(cli, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "p", "chosen": "c", "rejected": "r"}\n{oops\n')
    assert_one_line_error(cli("profile", "import", "carol", str(bad)), "line 2: not valid JSON")
    assert json.loads(cli("profile", "list", "--json").out) == []
    skipped = cli("profile", "import", "carol", str(bad), "--skip-bad")
    assert skipped.code == 0 and "imported 1 pair into" in skipped.out
    assert "skipped malformed lines (1): 2" in skipped.err


def test_show_without_a_fit(cli):
    cli("profile", "import", "alice", EXAMPLES)
    shown = cli("profile", "show", "alice")
    assert shown.code == 0
    assert "3 pairs" in shown.out and "drift-local fit --profile alice" in shown.out
    data = json.loads(cli("profile", "show", "alice", "--json").out)
    assert data == {"profile": "alice", "n_pairs": 3, "fit": None, "attributes": []}


def test_show_draws_every_attribute_most_preferred_first(cli):
    cli("profile", "import", "alice", EXAMPLES)
    save_fit("alice")
    shown = cli("profile", "show", "alice")
    assert shown.code == 0
    bars = [line for line in shown.out.splitlines() if "│" in line]
    assert len(bars) == len(NAMES)
    assert [line[3:].split()[0] for line in bars] == NAMES  # the fit's weight falls along NAMES
    assert bars[0].startswith("★~ formal") and "█│" not in bars[0] and "│█" in bars[0]
    assert "█│" in bars[-1] and "│█" not in bars[-1] and bars[1].startswith("★  ")
    starred = [line[3:].split()[0] for line in bars if line.startswith("★")]
    assert starred == NAMES[:7]  # the largest |weight|
    style = "style, read off the answers' text: fewer exclamation marks -0.50, more bulleted or numbered list items +0.25;"
    for fact in ("on 3 pairs", "method bt", "reward sum", "model smollm2-135m", "~ sign not stable", "prefers shorter answers", style):
        assert fact in shown.out
    three = [line for line in cli("profile", "show", "alice", "--top", "3").out.splitlines() if "│" in line]
    assert sum(line.startswith("★") for line in three) == 3


def test_show_json(cli):
    cli("profile", "import", "alice", EXAMPLES)
    save_fit("alice")
    data = json.loads(cli("profile", "show", "alice", "--json").out)
    assert data["profile"] == "alice" and data["n_pairs"] == 3
    fit = data["fit"]
    assert (fit["model_id"], fit["method"], fit["reward"], fit["n_pairs"], fit["top_k"], fit["regularization"]) == (
        "smollm2-135m", "bt", "sum", 3, 7, 10.0)
    assert fit["stale"] is False and fit["style_weights"] == {"exclamations": -0.5, "list items": 0.25, "numbers": 0.0}
    cli("profile", "add-pair", "alice", "--prompt", "p", "--chosen", "c", "--rejected", "r", "--tie")
    assert json.loads(cli("profile", "show", "alice", "--json").out)["fit"]["stale"] is False  # ties are not fitted
    attributes = data["attributes"]
    assert [a["name"] for a in attributes] == NAMES
    assert attributes[0]["preference"] == pytest.approx(1.5) and attributes[0]["weight"] == 1.0
    assert (attributes[0]["stable"], attributes[1]["stable"], attributes[0]["sign_stability"]) == (False, True, 0.6)
    assert [a["name"] for a in attributes if a["in_top_k"]] == NAMES[:7]
    cli("profile", "attributes", "alice", "--disable", "formal")
    assert json.loads(cli("profile", "show", "alice", "--json").out)["fit"]["stale"] is True


def test_rm(cli):
    cli("profile", "create", "alice")
    assert_one_line_error(cli("profile", "rm", "alice"), "not deleting without confirmation")
    removed = cli("profile", "rm", "alice", "--yes")
    assert removed.code == 0 and "deleted profile 'alice'" in removed.out
    assert json.loads(cli("profile", "list", "--json").out) == []
    assert_one_line_error(cli("profile", "rm", "alice", "--yes"), "no profile named 'alice'")


def test_export_and_import_into_another_profile(cli, tmp_path):
    cli("profile", "import", "alice", EXAMPLES)
    exported = json.loads(cli("profile", "export", "alice", "-").out)
    assert exported["profile"] == "alice" and len(exported["pairs"]) == 3
    target = tmp_path / "alice.json"
    assert cli("profile", "export", "alice", str(target)).code == 0
    assert json.loads(target.read_text()) == exported
    copied = cli("profile", "import", "alice2", str(target))
    assert copied.code == 0 and "imported 3 pairs" in copied.out and "drift-local-export" in copied.out


def test_add_pair(cli):
    cli("profile", "create", "alice")
    added = cli("profile", "add-pair", "alice", "--prompt", "Hi", "--chosen", "Hello!", "--rejected", "What.")
    assert added.code == 0 and "holds 1 pair now" in added.out
    assert cli("profile", "add-pair", "alice", "--prompt", "Hi", "--chosen", "a", "--rejected", "b",
               "--tie").code == 0
    pairs = json.loads(cli("profile", "export", "alice", "-").out)["pairs"]
    assert [(p["chosen"], p["tie"]) for p in pairs] == [("Hello!", False), ("a", True)]
    assert_one_line_error(cli("profile", "add-pair", "alice", "--prompt", "Hi"), "missing --chosen")
    assert_one_line_error(cli("profile", "add-pair", "alice", "--prompt", "Hi", "--chosen", " ",
                              "--rejected", "b"), "'chosen' must be non-empty")


def test_attributes(cli):
    cli("profile", "create", "alice")
    changed = cli("profile", "attributes", "alice", "--add", "pirate=Talk like a pirate.",
                  "--disable", "formal", "--disable", "vague", "--json")
    listed = {a["name"]: a for a in json.loads(changed.out)}
    assert len(listed) == len(NAMES) + 1
    assert listed["pirate"] == {"name": "pirate", "prompt": "Talk like a pirate.", "enabled": True, "custom": True}
    assert not listed["formal"]["enabled"] and not listed["vague"]["enabled"]
    table = cli("profile", "attributes", "alice", "--enable", "vague", "--remove", "pirate")
    assert table.code == 0 and f"{len(NAMES) - 1} of {len(NAMES)} attributes enabled" in table.out
    assert_one_line_error(cli("profile", "attributes", "alice", "--add", "noequals"), "NAME=PROMPT")
    failed = cli("profile", "attributes", "alice", "--add", "x=y", "--disable", "nope")
    assert_one_line_error(failed, "no attribute named 'nope'")
    names = [a["name"] for a in json.loads(cli("profile", "attributes", "alice", "--json").out)]
    assert "x" not in names  # the whole command was one transaction


@pytest.mark.parametrize("args, text", [
    (("profile", "create", "bad name"), "invalid profile name"),
    (("profile", "show", "ghost"), "no profile named 'ghost'"),
    (("profile", "export", "ghost", "-"), "no profile named 'ghost'"),
    (("profile", "import", "alice", "/no/such/file.jsonl"), "no file at"),
])
def test_errors_are_one_line(cli, args, text):
    assert_one_line_error(cli(*args), text)


def test_help_explains_each_argument(cli):
    shown = cli("profile", "import", "--help")
    assert shown.code == 0
    for text in ("NAME", "FILE", "--user", "--skip-bad", "--no-create"):
        assert text in shown.out


def test_pairs_are_listed_and_removed_one_at_a_time(cli):
    added = cli("profile", "add-pair", "new", "--prompt", "Say [hi]", "--chosen", "hi", "--rejected", "HI!", "--tie")
    assert added.code == 0 and "it holds 1 pair now" in added.out  # created on first use, like import and rate
    cli("profile", "import", "new", EXAMPLES)
    pairs = json.loads(cli("profile", "pairs", "new", "--json").out)
    assert len(pairs) == 4 and pairs[0]["prompt"] == "Say [hi]" and pairs[0]["tie"] is True
    table = cli("profile", "pairs", "new").out
    assert "Say [hi]" in table and "4 pairs, 1 of them ties" in table
    removed = cli("profile", "rm-pair", "new", str(pairs[1]["id"]))
    assert removed.code == 0 and "it holds 3 pairs now" in removed.out
    assert [p["id"] for p in json.loads(cli("profile", "pairs", "new", "--json").out)] == [pairs[0]["id"], *[p["id"] for p in pairs[2:]]]
    assert_one_line_error(cli("profile", "rm-pair", "new", str(pairs[1]["id"])), f"no pair #{pairs[1]['id']}")


def test_export_then_import_is_lossless(cli, tmp_path):
    cli("profile", "import", "alice", EXAMPLES)
    cli("profile", "attributes", "alice", "--add", "pirate=You are an AI assistant who talks like a pirate.", "--disable", "concise", "--disable", "pirate")
    save_fit("alice")
    save_fit("alice")  # a history of two
    assert cli("profile", "export", "alice", str(tmp_path / "alice.json")).code == 0
    imported = cli("profile", "import", "bob", str(tmp_path / "alice.json"))
    assert imported.code == 0 and "1 custom attributes, 2 attributes switched off, 2 fits" in imported.out

    def shown(name):
        report = json.loads(cli("profile", "show", name, "--json").out)
        report["fit"].pop("id")
        return {k: v for k, v in report.items() if k != "profile"}

    assert shown("bob") == shown("alice")
    assert cli("profile", "attributes", "bob", "--json").out == cli("profile", "attributes", "alice", "--json").out
    alice, bob = (json.loads(cli("profile", "export", name, "-").out) for name in ("alice", "bob"))
    for export in (alice, bob):
        export.pop("profile"), export.pop("created")
        for fit in export["fits"]:
            fit.pop("id")
    assert alice == bob
