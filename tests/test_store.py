"""The SQLite store: schema versions, every method's round trip, atomicity, and sharing one
database between processes."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from drift_local.attributes import paper_attributes
from drift_local.errors import DriftError
from drift_local.store import store as store_module
from drift_local.store.store import Pair, Store


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("DRIFT_LOCAL_HOME", str(tmp_path / "home"))
    with Store.open() as opened:
        yield opened


def some_pairs(n: int, tag: str = "p") -> list[Pair]:
    return [Pair(f"{tag} prompt {i}", f"{tag} good {i}", f"{tag} bad {i}") for i in range(n)]


def raw_count(path: Path, table: str) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


# -- opening, schema --------------------------------------------------------------------------


def test_open_creates_the_store_under_drift_local_home(store, tmp_path):
    assert store.path == tmp_path / "home" / "drift.db"
    assert store.path.exists()
    assert store.schema_version() == store_module.SCHEMA_VERSION == len(store_module.MIGRATIONS)
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_store_from_a_newer_version_is_refused(tmp_path):
    path = tmp_path / "drift.db"
    Store(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(DriftError, match="newer drift-local") as caught:
        Store(path)
    assert caught.value.hint == "upgrade drift-local"


def test_pending_migrations_run_in_order(tmp_path, monkeypatch):
    path = tmp_path / "drift.db"
    Store(path).close()

    def add_notes(conn):
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")

    monkeypatch.setattr(store_module, "MIGRATIONS", [*store_module.MIGRATIONS, add_notes])
    latest = store_module.SCHEMA_VERSION + 1
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", latest)
    with Store(path) as upgraded:
        assert upgraded.schema_version() == latest
    assert raw_count(path, "notes") == 0


def test_a_failing_migration_changes_nothing(tmp_path, monkeypatch):
    path = tmp_path / "drift.db"
    Store(path).close()

    def half_done(conn):
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY)")
        raise RuntimeError("boom")

    monkeypatch.setattr(store_module, "MIGRATIONS", [*store_module.MIGRATIONS, half_done])
    before = store_module.SCHEMA_VERSION
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", before + 1)
    with pytest.raises(RuntimeError):
        Store(path)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == before
        assert not conn.execute("SELECT name FROM sqlite_master WHERE name = 'notes'").fetchall()


def test_scores_from_before_end_of_turn_scoring_are_dropped(tmp_path):
    path = tmp_path / "drift.db"
    with Store(path) as store:
        store.put_logprobs("m", 0, [("s", "p", "r", -1.0, 1)])
    _rewind_to_v2(path)
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 1")
    with Store(path) as store:
        assert store.get_logprobs("m", 0, [("s", "p", "r")]) == {}


def _rewind_to_v2(path) -> None:
    """Make a current store look like one written by schema version 2."""
    with sqlite3.connect(path) as conn:
        conn.execute("ALTER TABLE fits DROP COLUMN style_ceilings")  # v6
        conn.execute("ALTER TABLE fits DROP COLUMN style_weights")  # v5
        conn.execute("ALTER TABLE fits DROP COLUMN n_left_out")  # v4
        conn.execute("ALTER TABLE fits DROP COLUMN sign_stability")
        conn.execute("ALTER TABLE fits DROP COLUMN regularization")
        conn.execute("ALTER TABLE fits DROP COLUMN length_weight")
        conn.execute("ALTER TABLE fits DROP COLUMN answer_tokens")
        conn.execute("PRAGMA user_version = 2")


def test_fits_from_schema_v2_keep_their_weights_under_the_new_method_name(tmp_path):
    path = tmp_path / "drift.db"
    with Store(path) as store:
        profile = store.create_profile("me")
        store.save_fit(profile, model_id="m", method="paper", reward="sum", n_pairs=3, names=["a", "b"], weights=[0.6, -0.8], preference=[1.0, -2.0])
    _rewind_to_v2(path)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE fits SET method = 'qp'")
    with Store(path) as store:
        fit = store.latest_fit(store.get_profile("me"))
    assert (fit.method, fit.weights, fit.sign_stability, fit.regularization) == ("paper", [0.6, -0.8], None, None)


def test_a_file_that_is_not_a_store_is_a_clear_error(tmp_path):
    path = tmp_path / "drift.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(DriftError, match="not a usable drift-local store"):
        Store(path)


# -- profiles ---------------------------------------------------------------------------------


def test_profile_round_trip(store):
    created = store.create_profile("alice")
    assert store.get_profile("alice") == created
    assert created.name == "alice" and created.created.endswith("+00:00")
    store.create_profile("bob")
    store.add_pairs(created, some_pairs(2))
    store.save_fit(created, model_id="m", method="lr", reward="sum", n_pairs=2,
                   names=["a"], weights=[1.0], preference=[0.5])
    summaries = {s.name: s for s in store.list_profiles()}
    assert summaries["alice"].n_pairs == 2 and summaries["alice"].last_fit is not None
    assert summaries["bob"].n_pairs == 0 and summaries["bob"].last_fit is None


@pytest.mark.parametrize("name", ["", "a b", "x" * 65, "naïve", "a/b"])
def test_bad_profile_names_are_refused(store, name):
    with pytest.raises(DriftError, match="invalid profile name"):
        store.create_profile(name)


def test_duplicate_and_unknown_profiles(store):
    store.create_profile("alice")
    with pytest.raises(DriftError, match="already exists") as duplicate:
        store.create_profile("alice")
    assert duplicate.value.hint
    with pytest.raises(DriftError, match="no profile named 'x'") as unknown:
        store.get_profile("x")
    assert unknown.value.hint == "create it with: drift-local profile create x"


def test_delete_profile_cascades(store):
    alice = store.create_profile("alice")
    store.add_pairs(alice, some_pairs(3))
    store.add_attribute(alice, "pirate", "Talk like a pirate.")
    store.set_attribute_enabled(alice, "formal", False)
    store.save_fit(alice, model_id="m", method="lr", reward="sum", n_pairs=3,
                   names=["a"], weights=[1.0], preference=[0.5])
    store.add_message(store.start_conversation(alice, {}), "user", "hi")
    store.delete_profile("alice")
    for table in ("profiles", "pairs", "custom_attributes", "disabled_attributes", "fits",
                  "conversations", "messages"):
        assert raw_count(store.path, table) == 0, table
    with pytest.raises(DriftError):
        store.delete_profile("alice")


# -- attributes -------------------------------------------------------------------------------


def test_a_new_profile_has_the_papers_attributes_enabled(store):
    alice = store.create_profile("alice")
    listed = store.profile_attributes(alice)
    assert [a.name for a in listed] == paper_attributes().names
    assert all(a.enabled and not a.custom for a in listed)
    assert store.active_attributes(alice) == paper_attributes()


def test_custom_and_disabled_attributes(store):
    alice = store.create_profile("alice")
    store.add_attribute(alice, "pirate", "Talk like a pirate.")
    store.add_attribute(alice, "brief", "Answer in one line.")
    store.set_attribute_enabled(alice, "formal", False)
    store.set_attribute_enabled(alice, "pirate", False)
    listed = store.profile_attributes(alice)
    assert [a.name for a in listed[-2:]] == ["pirate", "brief"]
    assert listed[-2].custom and not listed[-2].enabled
    active = store.active_attributes(alice)
    assert active.base == paper_attributes().base
    assert "formal" not in active.names and "pirate" not in active.names and active.names[-1] == "brief"
    store.set_attribute_enabled(alice, "formal", True)
    store.remove_attribute(alice, "pirate")
    assert [a.name for a in store.profile_attributes(alice)] == [*paper_attributes().names, "brief"]
    assert raw_count(store.path, "disabled_attributes") == 0


def test_attribute_errors(store):
    alice = store.create_profile("alice")
    with pytest.raises(DriftError, match="already has an attribute named 'formal'"):
        store.add_attribute(alice, "formal", "x")
    with pytest.raises(DriftError, match="cannot be removed"):
        store.remove_attribute(alice, "formal")
    with pytest.raises(DriftError, match="no attribute named 'nope'") as unknown:
        store.set_attribute_enabled(alice, "nope", False)
    assert "drift-local profile attributes alice" in unknown.value.hint
    with pytest.raises(DriftError, match="non-empty"):
        store.add_attribute(alice, "blank", "  ")


def test_the_last_enabled_attribute_cannot_be_disabled(store):
    alice = store.create_profile("alice")
    *others, last = paper_attributes().names
    for name in others:
        store.set_attribute_enabled(alice, name, False)
    with pytest.raises(DriftError, match="at least one enabled attribute"):
        store.set_attribute_enabled(alice, last, False)
    assert store.active_attributes(alice).names == [last]


# -- pairs ------------------------------------------------------------------------------------


def test_pairs_round_trip(store):
    alice = store.create_profile("alice")
    ids = store.add_pairs(alice, [Pair("p", "c", "r", source="test"), Pair("p2", "c2", "r2", tie=True)])
    pairs = store.list_pairs(alice)
    assert [p.id for p in pairs] == ids
    assert (pairs[0].prompt, pairs[0].chosen, pairs[0].rejected, pairs[0].tie, pairs[0].source) == (
        "p", "c", "r", False, "test")
    assert pairs[1].tie is True
    assert [p.id for p in store.list_pairs(alice, include_ties=False)] == ids[:1]
    assert (store.count_pairs(alice), store.count_pairs(alice, include_ties=False)) == (2, 1)
    store.delete_pair(alice, ids[0])
    assert [p.id for p in store.list_pairs(alice)] == ids[1:]


def test_a_pair_of_another_profile_cannot_be_deleted(store):
    alice, bob = store.create_profile("alice"), store.create_profile("bob")
    (bobs,) = store.add_pairs(bob, some_pairs(1))
    with pytest.raises(DriftError, match="no pair #"):
        store.delete_pair(alice, bobs)
    assert store.count_pairs(bob) == 1


def test_add_pairs_refuses_a_bad_pair_and_adds_none(store):
    alice = store.create_profile("alice")
    batch = [*some_pairs(3), Pair("p", None, "r")]
    with pytest.raises(DriftError, match="pair 4: 'chosen'"):
        store.add_pairs(alice, batch)
    assert store.count_pairs(alice) == 0


def test_add_pairs_is_all_or_nothing_when_the_database_rejects_a_row(store, monkeypatch):
    monkeypatch.setattr(store_module, "_check_pair", lambda index, pair: None)
    alice = store.create_profile("alice")
    with pytest.raises(sqlite3.IntegrityError):
        store.add_pairs(alice, [*some_pairs(3), Pair("p", None, "r")])
    assert store.count_pairs(alice) == 0


def test_a_transaction_that_raises_leaves_nothing(store):
    alice = store.create_profile("alice")
    with pytest.raises(KeyboardInterrupt):
        with store.transaction():
            store.add_pairs(alice, some_pairs(2))
            store.create_profile("bob")
            raise KeyboardInterrupt
    assert store.count_pairs(alice) == 0
    assert [s.name for s in store.list_profiles()] == ["alice"]


# -- sharing one database ---------------------------------------------------------------------

WRITER = textwrap.dedent(
    """
    import sys
    from drift_local.store.store import Pair, Store
    import os, time
    path, tag, rounds, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    print("ready", flush=True)
    while not os.path.exists(path + ".go"):
        time.sleep(0.005)
    with Store(path) as store:
        profile = store.get_profile("shared")
        for i in range(rounds):
            batch = [Pair(f"{tag} {i} {j}", "good", "bad") for j in range(size)]
            store.add_pairs(profile, batch)
            print(store.count_pairs(profile), flush=True)
    """
)


def writer(path: Path, tag: str, rounds: int, size: int) -> subprocess.Popen:
    """A process that adds `rounds` batches of `size` pairs once `path`.go exists, printing
    the pair count after each; returned once it is ready to start."""
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), tag, str(rounds), str(size)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert proc.stdout.readline() == "ready\n"
    return proc


def test_two_processes_writing_at_once_lose_nothing(store):
    shared = store.create_profile("shared")
    procs = [writer(store.path, tag, rounds=100, size=2) for tag in ("a", "b")]
    Path(f"{store.path}.go").touch()
    for i in range(20):
        store.add_pairs(shared, some_pairs(1, tag=f"main {i}"))
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    prompts = [p.prompt for p in store.list_pairs(shared)]
    assert len(prompts) == len(set(prompts)) == 2 * 100 * 2 + 20
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_writer_waits_for_another_stores_transaction(store):
    shared = store.create_profile("shared")
    holding = threading.Event()

    def hold_the_lock():
        with Store(store.path) as other, other.transaction():
            other.add_pairs(other.get_profile("shared"), some_pairs(1, tag="other"))
            holding.set()
            time.sleep(0.3)

    thread = threading.Thread(target=hold_the_lock)
    thread.start()
    holding.wait(5)
    store.add_pairs(shared, some_pairs(1))  # blocks on the busy timeout, then succeeds
    thread.join()
    assert store.count_pairs(shared) == 2


def test_kill_9_mid_import_leaves_only_whole_transactions(store):
    store.create_profile("shared")
    proc = writer(store.path, "k", rounds=100_000, size=10)
    Path(f"{store.path}.go").touch()
    committed = [int(proc.stdout.readline()) for _ in range(5)]
    proc.kill()
    proc.wait()
    with Store(store.path) as reopened:
        count = reopened.count_pairs(reopened.get_profile("shared"))
    assert count % 10 == 0 and count >= committed[-1]
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


# -- log-prob cache ---------------------------------------------------------------------------


def test_logprob_cache_round_trip(store):
    rows = [("sys", "prompt", f"response {i}", -1.5 * i, i + 1) for i in range(3)]
    store.put_logprobs("model-a", 0, rows)
    keys = [row[:3] for row in rows] + [("sys", "prompt", "never scored")]
    assert store.get_logprobs("model-a", 0, keys) == {row[:3]: (row[3], row[4]) for row in rows}
    store.put_logprobs("model-a", 0, [("sys", "prompt", "response 0", -9.0, 7)])
    assert store.get_logprobs("model-a", 0, keys[:1]) == {keys[0]: (-9.0, 7)}


def test_logprob_cache_is_keyed_by_model_and_cap(store):
    key = ("sys", "prompt", "response")
    store.put_logprobs("model-a", 128, [(*key, -2.0, 5)])
    assert store.get_logprobs("model-a", 128, [key]) == {key: (-2.0, 5)}
    assert store.get_logprobs("model-a", 0, [key]) == {}
    assert store.get_logprobs("model-b", 128, [key]) == {}


def test_logprob_cache_stores_hashes_and_looks_up_in_batches(store):
    rows = [("s", "p", f"r{i}", float(i), i) for i in range(1234)]
    store.put_logprobs("m", 0, rows)
    found = store.get_logprobs("m", 0, [row[:3] for row in rows])
    assert len(found) == 1234 and found[("s", "p", "r1000")] == (1000.0, 1000)
    with sqlite3.connect(store.path) as conn:
        assert {len(h) for (h,) in conn.execute("SELECT key_hash FROM logprob_cache")} == {32}


# -- fits -------------------------------------------------------------------------------------


def test_fit_history(store):
    alice = store.create_profile("alice")
    assert store.latest_fit(alice) is None
    first = store.save_fit(alice, model_id="m1", method="lr", reward="sum", n_pairs=3,
                           names=["a", "b"], weights=[0.5, -1.0], preference=[0.2, -0.3])
    second = store.save_fit(alice, model_id="m2", method="lr", reward="mean", n_pairs=4,
                            names=["a", "b"], weights=[1.0, 2.0], preference=[0.1, 0.4])
    latest = store.latest_fit(alice)
    assert latest.id == second and latest.reward == "mean" and latest.weights == [1.0, 2.0]
    older = store.latest_fit(alice, model_id="m1")
    assert (older.id, older.names, older.preference, older.n_pairs) == (first, ["a", "b"], [0.2, -0.3], 3)
    assert [f.id for f in store.fit_history(alice)] == [second, first]
    assert [f.id for f in store.fit_history(alice, limit=1)] == [second]


def test_a_fit_needs_one_value_per_attribute(store):
    alice = store.create_profile("alice")
    with pytest.raises(DriftError, match="one weight and one preference"):
        store.save_fit(alice, model_id="m", method="lr", reward="sum", n_pairs=1,
                       names=["a", "b"], weights=[1.0], preference=[1.0, 2.0])


# -- chat log ---------------------------------------------------------------------------------


def test_conversations(store):
    alice = store.create_profile("alice")
    assert store.last_conversation(alice) is None
    first = store.start_conversation(alice, {"llm": "x"})
    store.add_message(first, "user", "hello", {"tokens": 2})
    store.add_message(first, "assistant", "hi there")
    anonymous = store.start_conversation(None, {})
    store.add_message(anonymous, "user", "no profile")
    conversation_id, messages = store.last_conversation(alice)
    assert conversation_id == first
    assert [(m.role, m.content, m.meta) for m in messages] == [
        ("user", "hello", {"tokens": 2}), ("assistant", "hi there", {})]
    assert store.last_conversation(None)[0] == anonymous
    assert store.conversation_messages(anonymous)[0].content == "no profile"
    with pytest.raises(DriftError, match="no conversation #999"):
        store.add_message(999, "user", "lost")


# -- export -----------------------------------------------------------------------------------


def test_export_profile(store):
    alice = store.create_profile("alice")
    store.add_pairs(alice, some_pairs(2))
    store.add_attribute(alice, "pirate", "Talk like a pirate.")
    store.set_attribute_enabled(alice, "formal", False)
    store.save_fit(alice, model_id="m", method="lr", reward="sum", n_pairs=2,
                   names=["a"], weights=[1.0], preference=[0.5])
    exported = json.loads(json.dumps(store.export_profile("alice")))
    assert exported["profile"] == "alice"
    assert [p["prompt"] for p in exported["pairs"]] == ["p prompt 0", "p prompt 1"]
    assert exported["custom_attributes"] == [{"name": "pirate", "prompt": "Talk like a pirate."}]
    assert exported["disabled_attributes"] == ["formal"]
    assert exported["fits"][0]["weights"] == [1.0]
