"""The store's health: SQLite's check of the file, automatic backups, and restoring one.

A backup is taken through SQLite's online backup API (a consistent copy while others keep
using the database) after a commit, when the newest backup is over EVERY_S old and the
store passes its quick check, into `backups/` beside it; the newest KEEP are kept. Each is
written to a temporary name, fsynced, renamed, and its folder fsynced: a crash leaves
either the old set or the new one.
"""

from __future__ import annotations

import os
import sqlite3
import time
from datetime import datetime, timezone
from pathlib import Path

from drift_local.errors import DriftError

EVERY_S = 900
KEEP = 5


def check_file(conn: sqlite3.Connection, full: bool = False) -> list[str]:
    """SQLite's own check of the whole file: quick_check (b-trees, pages, records) or, `full`,
    integrity_check (also every index against its table). Empty: no problem found."""
    try:
        rows = conn.execute(f"PRAGMA {'integrity_check' if full else 'quick_check'}(20)").fetchall()
    except sqlite3.DatabaseError as exc:  # the header or the schema itself is unreadable
        return [str(exc)]
    problems = [row[0] for row in rows]
    return [] if problems == ["ok"] else problems


def check_path(path: Path, full: bool = True) -> list[str]:
    """check_file on a database file that may be too damaged for a Store to open."""
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return check_file(conn, full)
    finally:
        conn.close()


def folder(store_path: Path) -> Path:
    return store_path.parent / "backups"


def backups(store_path: Path) -> list[Path]:
    """The store's backups, newest first."""
    found = folder(store_path).glob(f"{store_path.stem}-*.db")
    return sorted(found, key=lambda p: p.name, reverse=True)  # names sort by time


def keep_if_due(conn: sqlite3.Connection, store_path: Path) -> Path | None:
    """Back the store up when its newest backup is over EVERY_S old and it passes quick_check.

    Best effort: a failed backup (full disk, read-only folder) must not undo or fail the
    write it follows; `drift-local doctor` shows how old the newest backup is.
    """
    try:
        existing = backups(store_path)
        if existing and time.time() - existing[0].stat().st_mtime < EVERY_S:
            return None
        if not _holds_profiles(conn) or check_file(conn):
            return None  # nothing stored yet, or a damaged store: never rotate a good backup out for it
        return write_backup(conn, store_path)
    except (OSError, sqlite3.Error):
        return None


def _holds_profiles(conn: sqlite3.Connection) -> bool:
    try:
        return conn.execute("SELECT 1 FROM profiles LIMIT 1").fetchone() is not None
    except sqlite3.Error:  # a store still being created
        return False


def write_backup(conn: sqlite3.Connection, store_path: Path) -> Path:
    target = folder(store_path)
    target.mkdir(exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-%f")
    path = target / f"{store_path.stem}-{stamp}.db"
    partial = path.with_name(path.name + ".partial")
    try:
        copy = sqlite3.connect(partial)
        try:
            conn.backup(copy)
        finally:
            copy.close()
        replace_durably(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    for old in backups(store_path)[KEEP:]:
        old.unlink(missing_ok=True)
    return path


def newest_good(store_path: Path) -> Path | None:
    """The newest backup that passes the full check."""
    return next((b for b in backups(store_path) if not check_path(b)), None)


def restore(store_path: Path, source: Path) -> Path:
    """Put `source` in place of the store; the store's current files are moved aside, not deleted.

    Returns where the old store went. Other drift-local processes must not be running.
    """
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    aside = store_path.with_name(f"{store_path.name}.damaged-{stamp}")
    partial = store_path.with_name(store_path.name + ".restoring")
    partial.write_bytes(source.read_bytes())
    try:
        if store_path.exists():
            os.replace(store_path, aside)
        for suffix in ("-wal", "-shm"):  # the old store's journal must not be applied to the backup
            journal = store_path.with_name(store_path.name + suffix)
            if journal.exists():
                os.replace(journal, aside.with_name(aside.name + suffix))
        replace_durably(partial, store_path)
    finally:
        partial.unlink(missing_ok=True)
    return aside


def replace_durably(partial: Path, path: Path) -> None:
    """Rename `partial` over `path` so that a power cut keeps one of the two whole."""
    with partial.open("rb+") as file:
        os.fsync(file.fileno())
    os.replace(partial, path)
    fsync_folder(path.parent)


def fsync_folder(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # Windows cannot open a folder; its renames are durable already
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def diagnose(store_path: Path) -> dict:
    """The full check of the store and its backups, as JSON-able data (`drift-local doctor`)."""
    report: dict = {"store": str(store_path), "exists": store_path.is_file(), "problems": [], "backups": []}
    if report["exists"]:
        report["size_bytes"] = store_path.stat().st_size
        report["problems"] = check_path(store_path)
    report["ok"] = report["exists"] and not report["problems"]
    report["backups"] = [
        {"path": str(b), "created": datetime.fromtimestamp(b.stat().st_mtime, timezone.utc).isoformat(timespec="seconds")}
        for b in backups(store_path)
    ]
    return report


def restore_latest(store_path: Path) -> tuple[Path, Path]:
    """Restore the newest backup that passes the full check: (backup used, where the old store went)."""
    source = newest_good(store_path)
    if source is None:
        raise DriftError(
            f"no good backup of {store_path} in {folder(store_path)}",
            hint="save what is readable with drift-local profile export NAME FILE, then move the store away",
        )
    return source, restore(store_path, source)
