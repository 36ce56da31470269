"""The SQLite store of everything a user gives drift-local: profiles, preference pairs,
attribute choices, fitted weights, chat logs, and the cache of small-model log-probs.

Durability and sharing: the database runs in WAL mode, every write is one
`BEGIN IMMEDIATE` transaction, and a busy timeout lets two processes (a chat and a rating
session) take turns instead of failing. A crash, Ctrl-C or kill -9 at any moment leaves
every committed transaction and nothing half-written.

`synchronous=FULL` (an fsync per commit) rather than NORMAL: with WAL, NORMAL can lose the
last commits on a power cut. Those commits are pairs a person rated by hand and cannot be
recomputed, and writes come at human pace or in large batches, so the fsync costs nothing.

Damage: before a connection first writes, it runs `PRAGMA quick_check` (about 3 ms per MB of
database) and refuses to write into a damaged file. After a commit, when the newest backup
is over 15 minutes old, the store is checked again and backed up (store/health.py).
Reads need no check: a read that meets a damaged page fails with one line that says what to
do. A store in a read-only folder opens read-only: everything can be read, nothing written.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from drift_local import config
from drift_local.attributes import Attribute, AttributeSet, paper_attributes
from drift_local.errors import DriftError
from drift_local.store import health

BUSY_TIMEOUT_S = 10.0
LOOKUP_BATCH = 500  # keys per SELECT ... IN (...); well under SQLite's variable limit
NAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,64}")
NAME_RULE = "1-64 characters: letters, digits, '-', '_' or '.'"
MAX_ATTRIBUTE_PROMPT = 4000

LogprobKey = tuple[str, str, str]  # (system prompt, user prompt, response)


@dataclass(frozen=True)
class Profile:
    """One person's preference profile."""

    id: int
    name: str
    created: str


@dataclass(frozen=True)
class ProfileSummary:
    """A profile as `profile list` shows it."""

    name: str
    created: str
    n_pairs: int
    last_fit: str | None


@dataclass(frozen=True)
class ProfileAttribute:
    """An attribute as a profile sees it: the paper's or the user's own, on or off."""

    name: str
    prompt: str
    enabled: bool
    custom: bool


@dataclass(frozen=True)
class Pair:
    """A preference pair: `chosen` was preferred over `rejected` for `prompt` (or, with `tie`,
    neither). `id` and `created` are the store's: None until it is stored. Two pairs are
    equal when their texts, tie and source are."""

    prompt: str
    chosen: str
    rejected: str
    id: int | None = field(default=None, compare=False)
    tie: bool = False
    source: str = ""
    created: str | None = field(default=None, compare=False)




@dataclass(frozen=True)
class FitRecord:
    """Attribute weights fitted to a profile's pairs with one small model."""

    id: int
    created: str
    model_id: str
    method: str
    reward: str
    n_pairs: int
    names: list[str]
    weights: list[float]
    preference: list[float]  # mean W-L per attribute: the paper's unit implicit preference
    sign_stability: list[float] | None = None  # per attribute: share of bootstrap refits with the same sign
    regularization: float | None = None  # the L2 strength chosen from the pairs (bt)
    length_weight: float = 0.0  # reward per token of answer length (bt)
    answer_tokens: float = 0.0  # mean length of the fitted pairs' answers, in tokens
    n_left_out: int = 0  # pairs too long to score, left out of this fit
    style_weights: dict[str, float] | None = None  # reward per unit of each style rate (bt with style)
    style_ceilings: dict[str, float] | None = None  # each style rate's highest value among the fitted answers


@dataclass(frozen=True)
class ConversationSummary:
    """A logged conversation as `drift-local logs` lists it."""

    id: int
    profile: str | None
    created: str
    meta: dict
    n_messages: int
    last_message: str | None  # when the latest message was logged
    first_prompt: str  # the first user message ("" when there is none)


@dataclass(frozen=True)
class Message:
    """One logged chat turn."""

    id: int
    role: str
    content: str
    meta: dict
    created: str


def _migrate_v1(conn: sqlite3.Connection) -> None:
    statements = [
        """CREATE TABLE profiles (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            created TEXT NOT NULL)""",
        """CREATE TABLE custom_attributes (
            id INTEGER PRIMARY KEY,
            profile_id INTEGER NOT NULL REFERENCES profiles(id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            prompt TEXT NOT NULL,
            UNIQUE (profile_id, name))""",
        # Enabled is the default; a row here switches one attribute (paper or custom) off.
        """CREATE TABLE disabled_attributes (
            profile_id INTEGER NOT NULL REFERENCES profiles(id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            PRIMARY KEY (profile_id, name)) WITHOUT ROWID""",
        """CREATE TABLE pairs (
            id INTEGER PRIMARY KEY,
            profile_id INTEGER NOT NULL REFERENCES profiles(id) ON DELETE CASCADE,
            prompt TEXT NOT NULL,
            chosen TEXT NOT NULL,
            rejected TEXT NOT NULL,
            tie INTEGER NOT NULL CHECK (tie IN (0, 1)),
            source TEXT NOT NULL,
            created TEXT NOT NULL)""",
        "CREATE INDEX pairs_by_profile ON pairs (profile_id, id)",
        """CREATE TABLE fits (
            id INTEGER PRIMARY KEY,
            profile_id INTEGER NOT NULL REFERENCES profiles(id) ON DELETE CASCADE,
            created TEXT NOT NULL,
            model_id TEXT NOT NULL,
            method TEXT NOT NULL,
            reward TEXT NOT NULL,
            n_pairs INTEGER NOT NULL,
            names TEXT NOT NULL,
            weights TEXT NOT NULL,
            preference TEXT NOT NULL)""",
        "CREATE INDEX fits_by_profile ON fits (profile_id, id)",
        # key_hash: sha256 of the (system, prompt, response) texts, so lookups never compare
        # long texts; cap: the max_response_tokens the log-prob was computed under (0: none).
        """CREATE TABLE logprob_cache (
            model_id TEXT NOT NULL,
            cap INTEGER NOT NULL,
            key_hash BLOB NOT NULL,
            logprob REAL NOT NULL,
            n_tokens INTEGER NOT NULL,
            PRIMARY KEY (model_id, cap, key_hash)) WITHOUT ROWID""",
        """CREATE TABLE conversations (
            id INTEGER PRIMARY KEY,
            profile_id INTEGER REFERENCES profiles(id) ON DELETE CASCADE,
            created TEXT NOT NULL,
            meta TEXT NOT NULL)""",
        """CREATE TABLE messages (
            id INTEGER PRIMARY KEY,
            conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            role TEXT NOT NULL,
            content TEXT NOT NULL,
            meta TEXT NOT NULL,
            created TEXT NOT NULL)""",
        "CREATE INDEX messages_by_conversation ON messages (conversation_id, id)",
    ]
    for statement in statements:
        conn.execute(statement)


def _migrate_v2(conn: sqlite3.Connection) -> None:
    # Scores now include the token that ends a whole response; older ones are recomputed.
    conn.execute("DELETE FROM logprob_cache")


def _migrate_v3(conn: sqlite3.Connection) -> None:
    # Fits record how sure each weight's sign is, and the regularization chosen for them.
    conn.execute("ALTER TABLE fits ADD COLUMN sign_stability TEXT")
    conn.execute("ALTER TABLE fits ADD COLUMN regularization REAL")
    conn.execute("ALTER TABLE fits ADD COLUMN length_weight REAL NOT NULL DEFAULT 0")
    conn.execute("ALTER TABLE fits ADD COLUMN answer_tokens REAL NOT NULL DEFAULT 0")
    conn.execute("UPDATE fits SET method = 'paper' WHERE method = 'qp'")  # the closed form's new name


def _migrate_v4(conn: sqlite3.Connection) -> None:
    # Pairs too long for the scoring context are left out of a fit; it records how many.
    conn.execute("ALTER TABLE fits ADD COLUMN n_left_out INTEGER NOT NULL DEFAULT 0")


def _migrate_v5(conn: sqlite3.Connection) -> None:
    # Fits may weigh the answer's style, read off its text (drift.style).
    conn.execute("ALTER TABLE fits ADD COLUMN style_weights TEXT")


def _migrate_v6(conn: sqlite3.Connection) -> None:
    # Fits record the style rates their answers reached: decoding rewards a style only up to there.
    conn.execute("ALTER TABLE fits ADD COLUMN style_ceilings TEXT")


# Migration i brings the schema from version i to i + 1. Append only; never edit a released one.
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_migrate_v1, _migrate_v2, _migrate_v3, _migrate_v4, _migrate_v5, _migrate_v6]
SCHEMA_VERSION = len(MIGRATIONS)


def _style_json(values: dict[str, float] | None) -> str | None:
    return None if values is None else json.dumps({str(k): float(v) for k, v in values.items()})


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _key_hash(key: LogprobKey) -> bytes:
    return hashlib.sha256(json.dumps(key, ensure_ascii=False).encode("utf-8")).digest()


def _check_name(kind: str, name: str) -> None:
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise DriftError(f"invalid {kind} name {name!r}: use {NAME_RULE}")


def _check_text(what: str, value: Any) -> None:
    if not isinstance(value, str) or not value.strip():
        raise DriftError(f"{what} must be non-empty text, got {value!r:.40}")
    if not is_unicode(value):
        raise DriftError(f"{what} is not valid Unicode text (it holds a lone surrogate), got {value!r:.40}")


def is_unicode(text: str) -> bool:
    """Whether `text` can be stored as UTF-8 (JSON and command lines can carry lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def is_storage_error(exc: BaseException) -> bool:
    """A failure of the file or the disk (full, read-only, damaged), not of a statement."""
    return isinstance(exc, sqlite3.OperationalError) or type(exc) is sqlite3.DatabaseError


def store_error(path: Path, exc: sqlite3.Error, writing: bool = True) -> DriftError:
    """What a SQLite error means for the user, as one line and what to do next."""
    message = str(exc)
    if "full" in message:
        return DriftError(
            f"the disk holding {path} is full: nothing of this change was stored, everything stored before is kept",
            hint="free some disk space and run the command again",
        )
    if isinstance(exc, sqlite3.OperationalError) and "readonly" in message:
        return DriftError(f"the store {path} is read-only", hint="make its folder writable, or copy it and point DRIFT_LOCAL_HOME at the copy")
    if isinstance(exc, sqlite3.OperationalError) and "malformed" not in message:
        return DriftError(f"cannot use the store {path}: {message}")
    return damaged(path, message, writing)


def damaged(path: Path, problem: str, writing: bool = True) -> DriftError:
    return DriftError(
        f"the store {path} is damaged ({problem})" + ("; nothing was written to it" if writing else ""),
        hint="see what is wrong with drift-local doctor, and restore the newest good backup with drift-local doctor --restore "
        "(drift-local profile export NAME FILE first saves a profile whose pages are still readable)",
    )


def _check_pair(index: int, pair: Pair) -> None:
    for name in ("prompt", "chosen", "rejected"):
        _check_text(f"pair {index}: '{name}'", getattr(pair, name))
    if not isinstance(pair.tie, bool):
        raise DriftError(f"pair {index}: 'tie' must be true or false, got {pair.tie!r:.40}")
    if not isinstance(pair.source, str) or not is_unicode(pair.source):
        raise DriftError(f"pair {index}: 'source' must be text, got {pair.source!r:.40}")
    if pair.created is not None and not isinstance(pair.created, str):
        raise DriftError(f"pair {index}: 'created' must be an ISO 8601 time, got {pair.created!r:.40}")


class Store:
    """A connection to the drift-local database. One Store per thread; any number per process
    or across processes. Use as a context manager, or call close()."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._depth = 0  # nesting level of transaction()
        self._checked = False  # quick_check passed on this connection: it may write
        self.read_only = False
        try:
            self._conn = self._connect()
        except sqlite3.DatabaseError as exc:
            raise self._unusable(exc) from None
        try:
            self._configure()
            self._migrate()
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise self._unusable(exc) from None
        except BaseException:
            self._conn.close()
            raise

    def _unusable(self, exc: sqlite3.DatabaseError) -> DriftError:
        if isinstance(exc, sqlite3.OperationalError):
            return DriftError(f"cannot open the store {self.path}: {exc}")
        return DriftError(  # not a SQLite file, or a damaged one
            f"{self.path} is not a usable drift-local store: {exc}",
            hint="drift-local doctor says what is wrong and can restore the last backup (--restore)",
        )

    @classmethod
    def open(cls, path: Path | None = None) -> Store:
        path = Path(path) if path is not None else config.store_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        return cls(path)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- connection, transactions, schema ---------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        """A connection for reading and writing; a read-only one where the folder or file is read-only."""
        # timeout: the busy timeout. isolation_level None: no implicit BEGINs; transaction()
        # issues its own.
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode").fetchone()
            return conn
        except sqlite3.OperationalError as exc:
            conn.close()
            if not self.path.is_file() or ("readonly" not in str(exc) and "unable to open" not in str(exc)):
                raise
        # WAL needs its -shm file beside the database; in a read-only folder there is none,
        # and nobody can be writing: read the file as it is.
        self.read_only = True
        uri = f"{self.path.resolve().as_uri()}?mode=ro&immutable=1"
        return sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None)

    def _configure(self) -> None:
        if not self.read_only and self._conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute("PRAGMA synchronous = FULL")
        self._conn.execute("PRAGMA foreign_keys = ON")

    def check(self, full: bool = False) -> list[str]:
        """Problems SQLite finds in the file (empty: none). `full` also checks every index's content."""
        return health.check_file(self._conn, full)

    def _check_before_writing(self) -> None:
        if self._checked:
            return
        problems = self.check()
        if problems:
            raise damaged(self.path, problems[0])
        self._checked = True

    def schema_version(self) -> int:
        return self._conn.execute("PRAGMA user_version").fetchone()[0]

    def _migrate(self) -> None:
        if self.read_only and self._checked_version() < SCHEMA_VERSION:
            raise DriftError(f"the store {self.path} needs an upgrade, and it is read-only", hint="make its folder writable once")
        while (version := self._checked_version()) < SCHEMA_VERSION:
            with self.transaction():
                # Re-read under the write lock: another process may have migrated meanwhile.
                if self.schema_version() == version:
                    MIGRATIONS[version](self._conn)
                    self._conn.execute(f"PRAGMA user_version = {version + 1}")

    def _checked_version(self) -> int:
        version = self.schema_version()
        if version > SCHEMA_VERSION:
            raise DriftError(
                f"the store {self.path} was written by a newer drift-local "
                f"(schema version {version}; this version knows up to {SCHEMA_VERSION})",
                hint="upgrade drift-local",
            )
        return version

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One all-or-nothing write. Nested uses join the outermost transaction.

        BEGIN IMMEDIATE takes the write lock up front; a deferred BEGIN (what `with conn:`
        does) that reads and then writes can fail at once with SQLITE_BUSY when another
        process committed in between, without waiting for the busy timeout.
        """
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        if self.read_only:
            raise store_error(self.path, sqlite3.OperationalError("readonly"))
        try:
            self._check_before_writing()
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc):
                raise store_error(self.path, exc) from None
            raise DriftError(
                f"the store {self.path} stayed locked for {BUSY_TIMEOUT_S:g} s",
                hint="another drift-local process is writing to it; try again",
            ) from None
        except sqlite3.DatabaseError as exc:
            if not is_storage_error(exc):
                raise
            raise store_error(self.path, exc) from None
        self._depth = 1
        try:
            yield
            self._conn.execute("COMMIT")
            health.keep_if_due(self._conn, self.path)
        except BaseException as exc:
            if self._conn.in_transaction:
                try:
                    self._conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass  # SQLite rolls back by itself when a statement fails this badly
            if is_storage_error(exc):
                raise store_error(self.path, exc) from None
            raise
        finally:
            self._depth = 0

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        cursor = self._conn.execute(sql, params)
        cursor.row_factory = sqlite3.Row
        return cursor.fetchall()

    # -- profiles ---------------------------------------------------------------------------

    def create_profile(self, name: str) -> Profile:
        _check_name("profile", name)
        created = _now()
        with self.transaction():
            if self._find_profile(name):
                raise DriftError(
                    f"a profile named '{name}' already exists",
                    hint=f"pick another name, or see it with: drift-local profile show {name}",
                )
            cursor = self._conn.execute(
                "INSERT INTO profiles (name, created) VALUES (?, ?)", (name, created)
            )
        return Profile(cursor.lastrowid, name, created)

    def ensure_profile(self, name: str) -> Profile:
        """The profile named `name`, created if it does not exist; safe when two processes race."""
        _check_name("profile", name)
        with self.transaction():
            self._conn.execute(
                "INSERT INTO profiles (name, created) VALUES (?, ?) ON CONFLICT (name) DO NOTHING", (name, _now())
            )
            return self.get_profile(name)

    def _find_profile(self, name: str) -> Profile | None:
        rows = self._rows("SELECT id, name, created FROM profiles WHERE name = ?", (name,))
        return Profile(**rows[0]) if rows else None

    def get_profile(self, name: str) -> Profile:
        profile = self._find_profile(name)
        if profile is None:
            raise DriftError(
                f"no profile named '{name}'", hint=f"create it with: drift-local profile create {name}"
            )
        return profile

    def list_profiles(self) -> list[ProfileSummary]:
        rows = self._rows(
            """SELECT p.name, p.created,
                      (SELECT COUNT(*) FROM pairs WHERE profile_id = p.id) AS n_pairs,
                      (SELECT created FROM fits WHERE profile_id = p.id
                       ORDER BY id DESC LIMIT 1) AS last_fit
               FROM profiles p ORDER BY p.name"""
        )
        return [ProfileSummary(**row) for row in rows]

    def delete_profile(self, name: str) -> None:
        with self.transaction():
            profile = self.get_profile(name)
            self._conn.execute("DELETE FROM profiles WHERE id = ?", (profile.id,))

    # -- attributes -------------------------------------------------------------------------

    def profile_attributes(self, profile: Profile) -> list[ProfileAttribute]:
        """Every attribute of the profile: the paper's in paper order, then custom ones in
        the order they were added."""
        disabled = {
            row["name"]
            for row in self._rows(
                "SELECT name FROM disabled_attributes WHERE profile_id = ?", (profile.id,)
            )
        }
        paper = [(a.name, a.prompt, False) for a in paper_attributes().attributes]
        custom = [
            (row["name"], row["prompt"], True)
            for row in self._rows(
                "SELECT name, prompt FROM custom_attributes WHERE profile_id = ? ORDER BY id",
                (profile.id,),
            )
        ]
        return [
            ProfileAttribute(name, prompt, enabled=name not in disabled, custom=is_custom)
            for name, prompt, is_custom in paper + custom
        ]

    def active_attributes(self, profile: Profile) -> AttributeSet:
        enabled = tuple(
            Attribute(a.name, a.prompt) for a in self.profile_attributes(profile) if a.enabled
        )
        return AttributeSet(base=paper_attributes().base, attributes=enabled)

    def add_attribute(self, profile: Profile, name: str, prompt: str) -> None:
        _check_name("attribute", name)
        _check_text(f"the prompt of attribute '{name}'", prompt)
        if len(prompt) > MAX_ATTRIBUTE_PROMPT:
            raise DriftError(
                f"the prompt of attribute '{name}' is {len(prompt)} characters; "
                f"the limit is {MAX_ATTRIBUTE_PROMPT}"
            )
        with self.transaction():
            if name in self._attribute_names(profile):
                raise DriftError(
                    f"profile '{profile.name}' already has an attribute named '{name}'",
                    hint="pick another name",
                )
            self._conn.execute(
                "INSERT INTO custom_attributes (profile_id, name, prompt) VALUES (?, ?, ?)",
                (profile.id, name, prompt),
            )

    def remove_attribute(self, profile: Profile, name: str) -> None:
        with self.transaction():
            attribute = self._attribute(profile, name)
            if not attribute.custom:
                raise DriftError(
                    f"'{name}' is one of the paper's attributes and cannot be removed",
                    hint=f"switch it off with: drift-local profile attributes {profile.name} --disable {name}",
                )
            self._conn.execute(
                "DELETE FROM custom_attributes WHERE profile_id = ? AND name = ?", (profile.id, name)
            )
            self._conn.execute(
                "DELETE FROM disabled_attributes WHERE profile_id = ? AND name = ?", (profile.id, name)
            )
            self._check_some_enabled(profile)

    def set_attribute_enabled(self, profile: Profile, name: str, enabled: bool) -> None:
        with self.transaction():
            self._attribute(profile, name)
            if enabled:
                self._conn.execute(
                    "DELETE FROM disabled_attributes WHERE profile_id = ? AND name = ?",
                    (profile.id, name),
                )
            else:
                self._conn.execute(
                    "INSERT OR IGNORE INTO disabled_attributes (profile_id, name) VALUES (?, ?)",
                    (profile.id, name),
                )
            self._check_some_enabled(profile)

    def _attribute_names(self, profile: Profile) -> list[str]:
        return [a.name for a in self.profile_attributes(profile)]

    def _attribute(self, profile: Profile, name: str) -> ProfileAttribute:
        for attribute in self.profile_attributes(profile):
            if attribute.name == name:
                return attribute
        raise DriftError(
            f"profile '{profile.name}' has no attribute named '{name}'",
            hint=f"see the names with: drift-local profile attributes {profile.name}",
        )

    def _check_some_enabled(self, profile: Profile) -> None:
        if not any(a.enabled for a in self.profile_attributes(profile)):
            raise DriftError(
                f"profile '{profile.name}' needs at least one enabled attribute",
                hint="enable another one first",
            )

    # -- pairs ------------------------------------------------------------------------------

    def add_pairs(self, profile: Profile, pairs: Sequence[Pair]) -> list[int]:
        """Store all of `pairs` in one transaction, or none of them."""
        for index, pair in enumerate(pairs, start=1):
            _check_pair(index, pair)
        created = _now()
        with self.transaction():
            return [
                self._conn.execute(
                    """INSERT INTO pairs (profile_id, prompt, chosen, rejected, tie, source, created)
                       VALUES (?, ?, ?, ?, ?, ?, ?)""",
                    (profile.id, p.prompt, p.chosen, p.rejected, int(p.tie), p.source, p.created or created),
                ).lastrowid
                for p in pairs
            ]

    def list_pairs(self, profile: Profile, include_ties: bool = True) -> list[Pair]:
        rows = self._rows(
            """SELECT id, prompt, chosen, rejected, tie, source, created FROM pairs
               WHERE profile_id = ? AND (? OR tie = 0) ORDER BY id""",
            (profile.id, include_ties),
        )
        return [Pair(**{**row, "tie": bool(row["tie"])}) for row in rows]

    def delete_pair(self, profile: Profile, pair_id: int) -> None:
        with self.transaction():
            cursor = self._conn.execute(
                "DELETE FROM pairs WHERE profile_id = ? AND id = ?", (profile.id, pair_id)
            )
            if cursor.rowcount == 0:
                raise DriftError(f"profile '{profile.name}' has no pair #{pair_id}")

    def count_pairs(self, profile: Profile, include_ties: bool = True) -> int:
        return self._conn.execute(
            "SELECT COUNT(*) FROM pairs WHERE profile_id = ? AND (? OR tie = 0)", (profile.id, include_ties)
        ).fetchone()[0]

    # -- log-prob cache ---------------------------------------------------------------------

    def get_logprobs(
        self, model_id: str, cap: int, keys: list[LogprobKey]
    ) -> dict[LogprobKey, tuple[float, int]]:
        """Cached (sum of response-token log-probs, response tokens) for the keys that have
        them; keys not cached are absent from the result."""
        by_hash = {_key_hash(key): key for key in keys}
        hashes = list(by_hash)
        found: dict[LogprobKey, tuple[float, int]] = {}
        for start in range(0, len(hashes), LOOKUP_BATCH):
            batch = hashes[start : start + LOOKUP_BATCH]
            rows = self._conn.execute(
                f"""SELECT key_hash, logprob, n_tokens FROM logprob_cache
                    WHERE model_id = ? AND cap = ? AND key_hash IN ({",".join("?" * len(batch))})""",
                (model_id, cap, *batch),
            )
            for key_hash, logprob, n_tokens in rows:
                found[by_hash[key_hash]] = (logprob, n_tokens)
        return found

    def put_logprobs(
        self, model_id: str, cap: int, rows: list[tuple[str, str, str, float, int]]
    ) -> None:
        with self.transaction():
            self._conn.executemany(
                """INSERT OR REPLACE INTO logprob_cache (model_id, cap, key_hash, logprob, n_tokens)
                   VALUES (?, ?, ?, ?, ?)""",
                [
                    (model_id, cap, _key_hash((system, prompt, response)), float(logprob), int(n))
                    for system, prompt, response, logprob, n in rows
                ],
            )

    # -- fits -------------------------------------------------------------------------------

    def save_fit(
        self,
        profile: Profile,
        *,
        model_id: str,
        method: str,
        reward: str,
        n_pairs: int,
        names: list[str],
        weights: list[float],
        preference: list[float],
        sign_stability: list[float] | None = None,
        regularization: float | None = None,
        length_weight: float = 0.0,
        answer_tokens: float = 0.0,
        n_left_out: int = 0,
        style_weights: dict[str, float] | None = None,
        style_ceilings: dict[str, float] | None = None,
        created: str | None = None,  # an imported fit keeps its time
    ) -> int:
        if not names or not len(names) == len(weights) == len(preference):
            raise DriftError(
                f"a fit needs one weight and one preference per attribute: got {len(names)} "
                f"names, {len(weights)} weights, {len(preference)} preferences"
            )
        with self.transaction():
            return self._conn.execute(
                """INSERT INTO fits (profile_id, created, model_id, method, reward, n_pairs,
                                     names, weights, preference, sign_stability, regularization,
                                     length_weight, answer_tokens, n_left_out, style_weights, style_ceilings)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    profile.id, created or _now(), model_id, method, reward, int(n_pairs), json.dumps(list(names)),
                    json.dumps([float(w) for w in weights]), json.dumps([float(p) for p in preference]),
                    None if sign_stability is None else json.dumps([float(x) for x in sign_stability]),
                    None if regularization is None else float(regularization),
                    float(length_weight), float(answer_tokens), int(n_left_out),
                    _style_json(style_weights), _style_json(style_ceilings),
                ),
            ).lastrowid

    def latest_fit(self, profile: Profile, model_id: str | None = None) -> FitRecord | None:
        rows = self._fit_rows(profile, model_id, limit=1)
        return rows[0] if rows else None

    def fit_history(self, profile: Profile, limit: int | None = 20) -> list[FitRecord]:
        """The profile's fits, newest first; limit None: all of them."""
        return self._fit_rows(profile, None, -1 if limit is None else limit)

    def _fit_rows(self, profile: Profile, model_id: str | None, limit: int) -> list[FitRecord]:
        # SQLite reads LIMIT -1 as no limit.
        rows = self._rows(
            """SELECT id, created, model_id, method, reward, n_pairs, names, weights, preference,
                      sign_stability, regularization, length_weight, answer_tokens, n_left_out, style_weights,
                      style_ceilings
               FROM fits WHERE profile_id = ? AND (? IS NULL OR model_id = ?)
               ORDER BY id DESC LIMIT ?""",
            (profile.id, model_id, model_id, limit),
        )
        decoded = ("names", "weights", "preference", "sign_stability", "style_weights", "style_ceilings")
        return [FitRecord(**{**row, **{k: json.loads(row[k]) if row[k] is not None else None for k in decoded}}) for row in rows]

    # -- chat log ---------------------------------------------------------------------------

    def start_conversation(self, profile: Profile | None, meta: dict) -> int:
        with self.transaction():
            return self._conn.execute(
                "INSERT INTO conversations (profile_id, created, meta) VALUES (?, ?, ?)",
                (profile.id if profile else None, _now(), json.dumps(meta, default=str)),
            ).lastrowid

    def add_message(
        self, conversation_id: int, role: str, content: str, meta: dict | None = None
    ) -> int:
        try:
            with self.transaction():
                return self._conn.execute(
                    """INSERT INTO messages (conversation_id, role, content, meta, created)
                       VALUES (?, ?, ?, ?, ?)""",
                    (conversation_id, role, content, json.dumps(meta or {}, default=str), _now()),
                ).lastrowid
        except sqlite3.IntegrityError:
            raise DriftError(f"no conversation #{conversation_id}") from None

    def conversation_messages(self, conversation_id: int) -> list[Message]:
        rows = self._rows(
            """SELECT id, role, content, meta, created FROM messages
               WHERE conversation_id = ? ORDER BY id""",
            (conversation_id,),
        )
        return [Message(**{**row, "meta": json.loads(row["meta"])}) for row in rows]

    def last_conversation(self, profile: Profile | None) -> tuple[int, list[Message]] | None:
        """The profile's conversation with the most recent message (None: the conversations
        held without a profile), with its messages; None when there is none."""
        row = self._conn.execute(
            """SELECT m.conversation_id FROM messages m
               JOIN conversations c ON c.id = m.conversation_id
               WHERE c.profile_id IS ? ORDER BY m.id DESC LIMIT 1""",
            (profile.id if profile else None,),
        ).fetchone()
        return (row[0], self.conversation_messages(row[0])) if row else None

    _CONVERSATIONS = """SELECT c.id, p.name AS profile, c.created, c.meta,
                  (SELECT COUNT(*) FROM messages m WHERE m.conversation_id = c.id) AS n_messages,
                  (SELECT MAX(m.created) FROM messages m WHERE m.conversation_id = c.id) AS last_message,
                  COALESCE((SELECT m.content FROM messages m WHERE m.conversation_id = c.id AND m.role = 'user'
                            ORDER BY m.id LIMIT 1), '') AS first_prompt
           FROM conversations c LEFT JOIN profiles p ON p.id = c.profile_id"""

    def conversation(self, conversation_id: int) -> ConversationSummary:
        rows = self._rows(f"{self._CONVERSATIONS} WHERE c.id = ?", (conversation_id,))
        if not rows:
            raise DriftError(f"no conversation #{conversation_id}", "list them with: drift-local logs")
        return ConversationSummary(**{**rows[0], "meta": json.loads(rows[0]["meta"])})

    def list_conversations(
        self, profile: Profile | None = None, query: str | None = None, limit: int = 20
    ) -> list[ConversationSummary]:
        """Conversations with at least one message, most recent first; with `query`, only those
        with a message containing it (case-insensitive for ASCII)."""
        pattern = None
        if query:
            pattern = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = self._rows(
            f"""{self._CONVERSATIONS}
                WHERE EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = c.id
                              AND (? IS NULL OR m.content LIKE ? ESCAPE '\\'))
                  AND (? IS NULL OR c.profile_id = ?)
                ORDER BY last_message DESC, c.id DESC LIMIT ?""",
            (pattern, pattern, profile.id if profile else None, profile.id if profile else None, limit),
        )
        return [ConversationSummary(**{**row, "meta": json.loads(row["meta"])}) for row in rows]

    # -- export -----------------------------------------------------------------------------

    def export_profile(self, name: str) -> dict:
        """The whole profile as JSON-able data. Its "pairs" can be imported again with
        `drift-local profile import`."""
        profile = self.get_profile(name)
        attributes = self.profile_attributes(profile)
        return {
            "format": "drift-local-profile",
            "schema_version": SCHEMA_VERSION,
            "profile": profile.name,
            "created": profile.created,
            "pairs": [
                {k: v for k, v in asdict(pair).items() if k != "id"}
                for pair in self.list_pairs(profile)
            ],
            "custom_attributes": [
                {"name": a.name, "prompt": a.prompt} for a in attributes if a.custom
            ],
            "disabled_attributes": [a.name for a in attributes if not a.enabled],
            "fits": [asdict(fit) for fit in self.fit_history(profile, limit=None)],
        }
