"""The store on bad days: damaged pages, a full disk, a read-only folder, racing creators,
and the backups and doctor that get a person back. Real SQLite files throughout: damage is
done by overwriting pages of the file."""

from __future__ import annotations

import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from contextlib import closing
from pathlib import Path

import pytest

from drift_local.errors import DriftError
from drift_local.store import health
from drift_local.store.store import Pair, Store

PAGE = 4096


def some_pairs(n: int, tag: str = "p") -> list[Pair]:
    return [Pair(f"{tag} prompt {i} " * 10, f"{tag} good {i} " * 30, f"{tag} bad {i} " * 30) for i in range(n)]


def filled_store(path: Path, n: int = 300) -> None:
    with Store(path) as store:
        store.add_pairs(store.create_profile("me"), some_pairs(n))
    checkpoint(path)


def checkpoint(path: Path) -> None:
    """Move the WAL's pages into the database file, where the damage goes."""
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def damage(path: Path, pages: int = 4, seed: int = 1) -> None:
    """Overwrite random pages in the second half of the file with random bytes."""
    n_pages = path.stat().st_size // PAGE
    rng = random.Random(seed)
    with path.open("r+b") as file:
        for page in rng.sample(range(n_pages // 2, n_pages), pages):
            file.seek(page * PAGE)
            file.write(rng.randbytes(PAGE))


def one_error_line(err: str, needle: str) -> None:
    lines = err.strip().splitlines()
    assert lines and lines[0].startswith("error:") and needle in lines[0], err
    assert len(lines) <= 2 and all(line.startswith(("error:", "hint:")) for line in lines), err


# -- damage -----------------------------------------------------------------------------------


def test_a_damaged_store_is_refused_for_writing_and_nothing_is_written(tmp_path):
    path = tmp_path / "drift.db"
    filled_store(path)
    damage(path)
    before = path.read_bytes()
    with Store(path) as store:
        with pytest.raises(DriftError, match="is damaged .*nothing was written") as caught:
            store.create_profile("you")
    assert "drift-local doctor --restore" in caught.value.hint
    assert path.read_bytes() == before


def test_the_cli_refuses_a_damaged_store_in_one_line_and_doctor_restores_a_backup(cli, isolated_home, tmp_path):
    pairs_file = tmp_path / "pairs.jsonl"
    pairs_file.write_text("".join(json.dumps({"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected}) + "\n" for p in some_pairs(300)))
    assert cli("profile", "import", "me", str(pairs_file)).code == 0  # backed up after this commit
    assert len(health.backups(isolated_home / "drift.db")) == 1
    path = isolated_home / "drift.db"
    checkpoint(path)
    damage(path)

    result = cli("profile", "import", "me", str(pairs_file))
    assert result.code == 1
    one_error_line(result.err, "is damaged")
    doctor = cli("doctor")
    assert doctor.code == 1 and "store damaged" in doctor.err and "doctor --restore" in doctor.err
    restored = cli("doctor", "--restore")
    assert restored.code == 0 and "store OK" in restored.out, restored.err
    assert list(isolated_home.glob("drift.db.damaged-*"))  # the damaged file is kept aside
    listed = json.loads(cli("profile", "list", "--json").out)
    assert [(p["name"], p["n_pairs"]) for p in listed] == [("me", 300)]


def test_an_unreadable_store_is_one_line_for_reading_commands(cli, isolated_home):
    isolated_home.mkdir(parents=True, exist_ok=True)
    (isolated_home / "drift.db").write_bytes(b"not a database at all" * 500)
    result = cli("profile", "list")
    assert result.code == 1
    one_error_line(result.err, "not a usable drift-local store")
    assert cli("doctor").code == 1


def test_backups_are_taken_after_writes_at_most_every_interval_and_rotated(tmp_path, monkeypatch):
    path = tmp_path / "drift.db"
    with Store(path) as store:
        profile = store.create_profile("me")
        store.add_pairs(profile, some_pairs(2))
        assert len(health.backups(path)) == 1  # the first commit that stored something
        monkeypatch.setattr(health, "EVERY_S", 0)
        for i in range(health.KEEP + 3):
            store.add_pairs(profile, some_pairs(1, tag=f"t{i}"))
    kept = health.backups(path)
    assert 1 < len(kept) <= health.KEEP
    assert not list(health.folder(path).glob("*.partial"))
    with Store(kept[0]) as newest:
        assert newest.count_pairs(newest.get_profile("me")) >= 2
    assert health.check_path(kept[0]) == []


# -- full disk, read-only folder, racing creators ----------------------------------------------


def test_a_full_disk_is_one_line_and_loses_nothing(cli, isolated_home, tmp_path, monkeypatch):
    """SQLite's own SQLITE_FULL, reached with max_page_count (a disk that holds no more pages)."""
    assert cli("profile", "create", "me").code == 0
    original = Store._configure

    def small_disk(self):
        original(self)
        pages = self._conn.execute("PRAGMA page_count").fetchone()[0]
        self._conn.execute(f"PRAGMA max_page_count = {pages + 2}")

    monkeypatch.setattr(Store, "_configure", small_disk)
    pairs_file = tmp_path / "pairs.jsonl"
    pairs_file.write_text("".join(json.dumps({"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected}) + "\n" for p in some_pairs(500)))
    result = cli("profile", "import", "me", str(pairs_file))
    assert result.code == 1
    one_error_line(result.err, "is full: nothing of this change was stored")
    monkeypatch.setattr(Store, "_configure", original)
    assert json.loads(cli("profile", "list", "--json").out)[0]["n_pairs"] == 0


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root to drop to another user")
def test_a_store_in_a_read_only_folder_can_be_read():
    home = Path(tempfile.mkdtemp(prefix="drift-read-only-"))  # pytest's own folders are private to root
    filled_store(home / "drift.db", n=3)
    os.chmod(home / "drift.db", 0o444)
    os.chmod(home, 0o555)
    try:
        _read_as_nobody(home)
    finally:
        os.chmod(home, 0o755)
        shutil.rmtree(home)


def _read_as_nobody(home: Path) -> None:
    env = {**os.environ, "DRIFT_LOCAL_HOME": str(home), "PYTHONPATH": str(Path(__file__).parents[1])}
    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m", "drift_local"]
    listed = subprocess.run([*as_nobody, "profile", "list", "--json"], capture_output=True, text=True, env=env, cwd="/")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)[0]["n_pairs"] == 3
    exported = subprocess.run([*as_nobody, "profile", "export", "me", "-"], capture_output=True, text=True, env=env, cwd="/")
    assert exported.returncode == 0 and len(json.loads(exported.stdout)["pairs"]) == 3
    created = subprocess.run([*as_nobody, "profile", "create", "you"], capture_output=True, text=True, env=env, cwd="/")
    assert created.returncode == 1
    one_error_line(created.stderr, "is read-only")


RACER = textwrap.dedent(
    """
    import sys, time
    from drift_local.store.store import Store
    path, start = sys.argv[1], float(sys.argv[2])
    while time.time() < start:
        pass
    with Store(path) as store:
        print(" ".join(str(store.ensure_profile(f"new-{i}").id) for i in range(40)))
    """
)


def test_two_processes_creating_the_same_new_profiles_both_succeed(tmp_path):
    path = tmp_path / "drift.db"
    Store(path).close()
    start = str(time.time() + 1.5)
    racers = [subprocess.Popen([sys.executable, "-c", RACER, str(path), start], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [racer.communicate(timeout=60) for racer in racers]
    assert all(racer.returncode == 0 for racer in racers), outputs
    assert outputs[0][0] == outputs[1][0]  # both got the same profiles
    with Store(path) as store:
        assert len(store.list_profiles()) == 40
