"""Read preference pairs from files a user brings. Files are parsed as JSON data, nothing more.

Formats, detected per file:
  pairs   JSONL, or a JSON array, of {prompt, chosen, rejected[, tie, source, user_id]};
          a `drift-local profile export` file is read the same way (its "pairs").
  prism   PRISM utterances.jsonl: one rated response a line; pairs are formed within each
          interaction_id, the chosen response against every response scored strictly lower.
  hh      Anthropic HH-RLHF: {chosen, rejected} transcripts "\\n\\nHuman: ...\\n\\nAssistant: ..."
          identical up to their final Assistant turn.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

from drift_local.errors import DriftError
from drift_local.store.store import Pair, is_unicode

MAX_LINE_BYTES = 1_000_000
MAX_DOCUMENT_BYTES = 256_000_000  # a whole-file JSON array or export is read into memory
DETECT_SAMPLE = 50  # objects looked at to decide a file's format
SHOWN_PROBLEMS = 3
HUMAN, ASSISTANT = "\n\nHuman:", "\n\nAssistant:"
EXPORT_FORMAT = "drift-local-export"

Numbered = list[tuple[int, dict]]  # (line or item number, JSON object)
Problems = list[tuple[int, str]]  # (line or item number, what is wrong)
Reader = Callable[[Numbered, str | None], tuple[list[Pair], Problems]]


@dataclass
class ImportResult:
    """Pairs read from one file, and the records skipped as malformed: (number, reason).

    Numbers are 1-based line numbers, or item numbers in a JSON array (`unit` says which)."""

    pairs: list[Pair]
    skipped: list[tuple[int, str]]
    format: str
    unit: str = "line"


@dataclass
class _Records:
    """A file's JSON objects, numbered, and the records that are not JSON objects."""

    objects: Numbered = field(default_factory=list)
    bad: Problems = field(default_factory=list)
    unit: str = "line"
    export: bool = False


class _Malformed(ValueError):
    """One record cannot be read; the message says why."""


def read_pairs(path: Path, *, user: str | None = None, skip_bad: bool = False) -> ImportResult:
    """Read the preference pairs in `path`, only `user`'s when given.

    Malformed records raise DriftError, naming their numbers; with `skip_bad` they are
    left out and listed in `skipped` instead."""
    path = Path(path)
    records = _read_records(path)
    format_name = EXPORT_FORMAT if records.export else _detect(records.objects, path)
    pairs, bad = _READERS[format_name](records.objects, user) if format_name else ([], [])
    skipped = sorted(records.bad + bad)
    if skipped and not skip_bad:
        raise DriftError(_problems(path, skipped, records.unit), hint="fix the file or pass --skip-bad")
    if not pairs:
        raise _nothing_found(path, user, records, len(skipped))
    return ImportResult(pairs, skipped, format_name or "", records.unit)


# -- from bytes to numbered JSON objects ----------------------------------------------------


def _read_records(path: Path) -> _Records:
    if not path.is_file():
        raise DriftError(f"no file at {path}")
    try:
        lead = _leading_byte(path)
        if lead == b"[":
            return _items(_load_document(path), unit="item")
        if lead == b"{" and not _first_line_is_json(path):
            export = _load_export(path)
            if export is not None:
                return _items(export, unit="item", export=True)
        return _jsonl_records(path)
    except OSError as exc:
        raise DriftError(f"cannot read {path}: {exc.strerror or exc}") from None


def _leading_byte(path: Path) -> bytes:
    with path.open("rb") as file:
        return file.read(4096).removeprefix(b"\xef\xbb\xbf").lstrip()[:1]


def _first_line_is_json(path: Path) -> bool:
    with path.open("rb") as file:
        line = file.readline(MAX_LINE_BYTES)
    try:
        json.loads(line)
    except (ValueError, RecursionError):
        return False
    return True


def _load_document(path: Path) -> Any:
    if path.stat().st_size > MAX_DOCUMENT_BYTES:
        raise DriftError(
            f"{path} is over {MAX_DOCUMENT_BYTES // 1_000_000} MB",
            hint="convert it to JSONL, one pair a line",
        )
    try:
        return json.loads(path.read_bytes().decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise DriftError(f"{path} is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise DriftError(f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}") from None
    except (ValueError, RecursionError) as exc:  # a number of 5,000 digits, arrays nested 200,000 deep
        raise DriftError(f"{path} is not JSON drift-local can read: {_json_problem(exc)}") from None


def _load_export(path: Path) -> list | None:
    """The "pairs" of a `profile export` file; None when the file is something else."""
    try:
        document = _load_document(path)
    except DriftError:
        return None
    pairs = document.get("pairs") if isinstance(document, dict) else None
    return pairs if isinstance(pairs, list) else None


def _items(document: list, *, unit: str, export: bool = False) -> _Records:
    records = _Records(unit=unit, export=export)
    for number, item in enumerate(document, start=1):
        _add_record(records, number, item)
    return records


def _jsonl_records(path: Path) -> _Records:
    records = _Records()
    for number, line in _lines(path):
        if line is None:
            records.bad.append((number, f"over the {MAX_LINE_BYTES:,}-byte line limit"))
            continue
        if not line.strip():
            continue
        try:
            obj = json.loads(line.decode("utf-8-sig" if number == 1 else "utf-8"))
        except UnicodeDecodeError:
            records.bad.append((number, "not UTF-8 text"))
        except json.JSONDecodeError as exc:
            records.bad.append((number, f"not valid JSON ({exc.msg})"))
        except (ValueError, RecursionError) as exc:
            records.bad.append((number, f"not JSON drift-local can read ({_json_problem(exc)})"))
        else:
            _add_record(records, number, obj)
    return records


def _json_problem(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return "a number too long" if "digits" in str(exc) else str(exc).split(";")[0][:80]


def _add_record(records: _Records, number: int, obj: Any) -> None:
    if isinstance(obj, dict):
        records.objects.append((number, obj))
    else:
        records.bad.append((number, f"not a JSON object: {_describe(obj)}"))


def _lines(path: Path) -> Iterator[tuple[int, bytes | None]]:
    """Numbered lines; None for a line over MAX_LINE_BYTES, which is never held in memory."""
    with path.open("rb") as file:
        number = 0
        while line := file.readline(MAX_LINE_BYTES + 1):
            number += 1
            if len(line) <= MAX_LINE_BYTES or line.endswith(b"\n"):
                yield number, line
                continue
            while line and not line.endswith(b"\n"):
                line = file.readline(MAX_LINE_BYTES)
            yield number, None


# -- formats --------------------------------------------------------------------------------


def _signature(obj: dict) -> str | None:
    if "model_response" in obj or "if_chosen" in obj:
        return "prism"
    if "prompt" in obj:
        return "pairs"
    if "chosen" in obj and "rejected" in obj:
        return "hh"
    return None


def _detect(objects: Numbered, path: Path) -> str | None:
    """The most common format among the first objects; None when there are no objects."""
    votes = Counter(_signature(obj) for _, obj in objects[:DETECT_SAMPLE])
    votes.pop(None, None)
    if votes:
        return votes.most_common(1)[0][0]
    if objects:
        raise DriftError(
            f"cannot tell the format of {path}",
            hint="expected JSONL of {prompt, chosen, rejected}, PRISM utterances.jsonl, "
            "or HH-RLHF {chosen, rejected} transcripts",
        )
    return None


def _user_of(obj: dict) -> str | None:
    user = obj.get("user_id")
    return None if user is None else str(user)


def _each_pair(read: Callable[[dict], Pair]) -> Reader:
    """A format reader that turns each object into one pair."""

    def read_all(objects: Numbered, user: str | None) -> tuple[list[Pair], Problems]:
        pairs: list[Pair] = []
        bad: Problems = []
        for number, obj in objects:
            if user is not None and _user_of(obj) != user:
                continue
            try:
                pairs.append(read(obj))
            except _Malformed as exc:
                bad.append((number, str(exc)))
        return pairs, bad

    return read_all


def _pair_from_object(obj: dict) -> Pair:
    tie = obj.get("tie", False)
    if not isinstance(tie, bool):
        raise _Malformed(f"'tie' must be true or false, not {_describe(tie)}")
    source = obj.get("source", "")
    if not isinstance(source, str) or not is_unicode(source):
        raise _Malformed(f"'source' must be a string of valid Unicode text, not {_describe(source)}")
    prompt, chosen, rejected = (_text(obj, key) for key in ("prompt", "chosen", "rejected"))
    return Pair(prompt, chosen, rejected, tie=tie, source=source, created=_time_or_none(obj.get("created")))


def _time_or_none(value) -> str | None:
    """When an exported pair was made (ISO 8601, as the store writes it); anything else is not kept."""
    try:
        return datetime.fromisoformat(value).isoformat(timespec="seconds") if isinstance(value, str) and len(value) <= 40 else None
    except ValueError:
        return None


def _hh_pair(obj: dict) -> Pair:
    context, chosen = _split_final_reply(_text(obj, "chosen"), "chosen")
    rejected_context, rejected = _split_final_reply(_text(obj, "rejected"), "rejected")
    if context != rejected_context:
        raise _Malformed("'chosen' and 'rejected' differ before their final Assistant turn")
    human = context.rfind(HUMAN)
    prompt = context[human + len(HUMAN) :].strip() if human >= 0 else ""
    if not prompt:
        raise _Malformed("no Human turn before the final Assistant turn")
    return Pair(prompt, chosen, rejected, source="hh-rlhf")


def _split_final_reply(transcript: str, key: str) -> tuple[str, str]:
    text = transcript if transcript.startswith("\n\n") else "\n\n" + transcript
    at = text.rfind(ASSISTANT)
    reply = text[at + len(ASSISTANT) :].strip() if at >= 0 else ""
    if not reply:
        raise _Malformed(f"'{key}' does not end with a non-empty Assistant turn")
    return text[:at], reply


class _Rated(NamedTuple):
    number: int
    prompt: str
    response: str
    score: float
    chosen: bool


def _prism_pairs(objects: Numbered, user: str | None) -> tuple[list[Pair], Problems]:
    interactions: dict[str, list[_Rated]] = {}
    bad: Problems = []
    for number, obj in objects:
        if user is not None and _user_of(obj) != user:
            continue
        try:
            interactions.setdefault(_interaction_id(obj), []).append(_rated(number, obj))
        except _Malformed as exc:
            bad.append((number, str(exc)))
    pairs: list[Pair] = []
    for interaction_id, responses in interactions.items():
        chosen = [r for r in responses if r.chosen]
        bad += [(r.number, f"a second chosen response in interaction {interaction_id}") for r in chosen[1:]]
        if len(chosen) == 1:
            pairs += _pairs_against(chosen[0], responses, f"prism:{interaction_id}")
    return pairs, bad


def _pairs_against(winner: _Rated, responses: list[_Rated], source: str) -> list[Pair]:
    return [
        Pair(winner.prompt, winner.response, loser.response, source=source)
        for loser in responses
        if loser.score < winner.score
    ]


def _interaction_id(obj: dict) -> str:
    value = obj.get("interaction_id")
    if isinstance(value, str) and value.strip() and is_unicode(value):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise _Malformed(f"'interaction_id' must be a string or an integer, not {_describe(value)}")


def _rated(number: int, obj: dict) -> _Rated:
    score, chosen = obj.get("score"), obj.get("if_chosen")
    if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
        raise _Malformed(f"'score' must be a finite number, not {_describe(score)}")
    if not isinstance(chosen, bool):
        raise _Malformed(f"'if_chosen' must be true or false, not {_describe(chosen)}")
    return _Rated(number, _text(obj, "user_prompt"), _text(obj, "model_response"), score, chosen)


def _text(obj: dict, key: str) -> str:
    if key not in obj:
        raise _Malformed(f"missing '{key}'")
    value = obj[key]
    if not isinstance(value, str):
        raise _Malformed(f"'{key}' must be a string, not {_describe(value)}")
    if not value.strip():
        raise _Malformed(f"'{key}' is empty")
    if not is_unicode(value):
        raise _Malformed(f"'{key}' is not valid Unicode text (a lone surrogate)")
    return value


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return json.dumps(value)[:40]


_READERS = {
    "pairs": _each_pair(_pair_from_object),
    EXPORT_FORMAT: _each_pair(_pair_from_object),
    "hh": _each_pair(_hh_pair),
    "prism": _prism_pairs,
}


# -- messages -------------------------------------------------------------------------------


def _problems(path: Path, skipped: Problems, unit: str) -> str:
    shown = "; ".join(f"{unit} {number}: {reason}" for number, reason in skipped[:SHOWN_PROBLEMS])
    more = f"; and {len(skipped) - SHOWN_PROBLEMS} more" if len(skipped) > SHOWN_PROBLEMS else ""
    return f"{path}: {_count(len(skipped), f'malformed {unit}')} ({shown}{more}); nothing imported"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _nothing_found(path: Path, user: str | None, records: _Records, n_skipped: int) -> DriftError:
    skipped = f" ({_count(n_skipped, f'malformed {records.unit}')} skipped)" if n_skipped else ""
    if user is None:
        return DriftError(f"no preference pairs in {path}{skipped}")
    users = sorted({u for _, obj in records.objects if (u := _user_of(obj)) is not None})
    more = ", ..." if len(users) > 5 else ""
    hint = f"users in the file: {', '.join(users[:5])}{more}" if users else "the file names no user_id"
    return DriftError(f"no preference pairs for user '{user}' in {path}{skipped}", hint=hint)
