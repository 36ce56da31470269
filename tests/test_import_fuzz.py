"""Hostile and broken files given to `profile import`: one line, a non-zero exit, nothing written.

A fixed seed and a few dozen files here; DRIFT_LOCAL_FUZZ_CASES=5000 (and DRIFT_LOCAL_FUZZ_SEED)
runs longer on demand.
"""

from __future__ import annotations

import json
import os
import random

import pytest

from drift_local.store.store import Pair, Store

CASES = int(os.environ.get("DRIFT_LOCAL_FUZZ_CASES", "32"))
SEED = int(os.environ.get("DRIFT_LOCAL_FUZZ_SEED", "12"))
GOOD = {"prompt": "p", "chosen": "c", "rejected": "r"}


def _deep(rng: random.Random) -> bytes:
    depth = rng.choice([1000, 20000, 200000])
    opener, closer = rng.choice([("[", "]"), ('{"a":', "}")])
    return (opener * depth + "1" + closer * depth).encode()


def _huge_number(rng: random.Random) -> bytes:
    digits = "".join(rng.choice("0123456789") for _ in range(rng.choice([4400, 5000, 20000])))
    field = rng.choice(["prompt", "tie", "score", "x"])
    return json.dumps({**GOOD, field: 0}).replace("0}", digits.lstrip("0") + "1}").encode()


def _odd_encoding(rng: random.Random) -> bytes:
    text = json.dumps({"prompt": "é ü ß 中文", "chosen": "ç", "rejected": "ñ"}, ensure_ascii=False) + "\n"
    return text.encode(rng.choice(["utf-16", "utf-32", "latin-1", "cp1252", "utf-16-le"]), errors="replace")


def _lone_surrogate(rng: random.Random) -> bytes:
    field = rng.choice(["prompt", "chosen", "rejected", "source"])
    return json.dumps({**GOOD, field: "a\ud800b"}).encode()


def _random_bytes(rng: random.Random) -> bytes:
    return rng.randbytes(rng.randint(1, 4000))


def _mutated(rng: random.Random) -> bytes:
    """Good lines with random bytes flipped, dropped or repeated: at least one line goes bad."""
    data = bytearray(b"".join(json.dumps({**GOOD, "prompt": f"p{i}"}).encode() + b"\n" for i in range(5)))
    for _ in range(rng.randint(1, 8)):
        at = rng.randrange(len(data))
        data[at : at + 1] = rng.choice([b"", bytes([rng.randrange(256)]), b"\xff\xfe", b'"', b"{", b"\\u"])
    data[0:0] = b"\x00{"  # the first line is surely broken
    return bytes(data)


def _wrong_shapes(rng: random.Random) -> bytes:
    value = rng.choice([None, True, 1e309, -0.0, "text", [], [{"prompt": "p"}, 3], {"prompt": ["a"]}, {"chosen": {}}, {"tie": "yes", **GOOD}])
    return json.dumps(value).replace("Infinity", "1e999").encode()


def _nan_and_friends(rng: random.Random) -> bytes:
    return rng.choice([b'{"prompt": NaN, "chosen": "c", "rejected": "r"}', b"[NaN, Infinity]", b'{"score": -Infinity, "if_chosen": true}'])


GENERATORS = [_deep, _huge_number, _odd_encoding, _lone_surrogate, _random_bytes, _mutated, _wrong_shapes, _nan_and_friends]


def cases() -> list[tuple[str, bytes, bool]]:
    rng = random.Random(SEED)
    out = []
    for i in range(CASES):
        make = GENERATORS[i % len(GENERATORS)]
        skip_bad = make is not _mutated and rng.random() < 0.3  # a mutated file keeps good lines to import
        out.append((f"{i}-{make.__name__.strip('_')}", make(rng), skip_bad))
    return out


@pytest.fixture
def kept_store():
    with Store.open() as store:
        store.add_pairs(store.create_profile("keep"), [Pair("a prompt", "yes", "no")])
        return store.path


def test_hostile_files_fail_in_one_line_and_write_nothing(cli, kept_store, tmp_path):
    for name, data, skip_bad in cases():
        path = tmp_path / f"{name}.jsonl"
        path.write_bytes(data)
        args = ["profile", "import", "fuzzed", str(path)] + (["--skip-bad"] if skip_bad else [])
        result = cli(*args)
        lines = result.err.strip().splitlines()
        assert result.code == 1, (name, result)
        assert lines and lines[0].startswith("error:") and len(lines) <= 2, (name, result.err)
        assert all(line.startswith(("error:", "hint:")) for line in lines), (name, result.err)
    with Store.open() as store:
        assert [p.name for p in store.list_profiles()] == ["keep"]
        assert store.count_pairs(store.get_profile("keep")) == 1
