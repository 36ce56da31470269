"""`pull` and `drift-local models` against a local stand-in for the Hugging Face Hub.

The stand-in serves `/{repo}/resolve/{revision}/{file}` with the headers hf_hub_download reads
(X-Repo-Commit, ETag, Content-Length, Range/Content-Range), and can cut a response short.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import gguf
import huggingface_hub.constants
import numpy as np
import pytest

from drift_local import config
from drift_local.catalog.catalog import resolve_model
from drift_local.catalog.pull import pull
from drift_local.errors import DriftError

REPO = "test-org/Tiny-GGUF"
FILE = "tiny-Q4_K_M.gguf"
JUNK_FILE = "not-a-model.gguf"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
SERVER_LIFETIME_S = 60
_RESOLVE = re.compile(r"/(?P<repo>[^/]+/[^/]+)/resolve/(?P<revision>[^/]+)/(?P<file>.+)")


@dataclass
class FakeHub:
    """What the server serves, how it misbehaves, and what it was asked."""

    endpoint: str = ""
    files: dict[tuple[str, str], bytes] = field(default_factory=dict)
    cut_short: int = 0  # how many full-file GETs stop halfway through the body
    refuse_resume: bool = False  # answer Range requests with 503
    requests: list[str] = field(default_factory=list)


class _HubHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 5  # a stuck client cannot hold a server thread for long

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass

    def do_HEAD(self) -> None:
        self._respond(send_body=False)

    def do_GET(self) -> None:
        self._respond(send_body=True)

    def _respond(self, *, send_body: bool) -> None:
        hub: FakeHub = self.server.hub  # type: ignore[attr-defined]
        hub.requests.append(f"{self.command} {self.path} range={self.headers.get('Range')}")
        # One request per connection, so every handler thread ends with its response.
        self.close_connection = True
        match = _RESOLVE.fullmatch(urlsplit(self.path).path)
        repo, file = (match["repo"], unquote(match["file"])) if match else ("", "")
        content = hub.files.get((repo, file))
        if content is None:
            known_repo = any(known == repo for known, _ in hub.files)
            return self._error(404, "EntryNotFound" if known_repo else "RepoNotFound")
        start = int(re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", "bytes=0-"))[1])
        if start and hub.refuse_resume:
            return self._error(503, None)
        self._send_file(content, start, send_body, hub)

    def _send_file(self, content: bytes, start: int, send_body: bool, hub: FakeHub) -> None:
        body = content[start:]
        self.send_response(206 if start else 200)
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("ETag", f'"{hashlib.sha256(content).hexdigest()}"')
        self.send_header("Accept-Ranges", "bytes")
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(content) - 1}/{len(content)}")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if not send_body:
            return
        if hub.cut_short and not start:
            hub.cut_short -= 1
            body = body[: len(body) // 2]  # fewer bytes than Content-Length, then the connection closes
        self.wfile.write(body)

    def _error(self, status: int, error_code: str | None) -> None:
        body = b"error"
        self.send_response(status)
        self.send_header("X-Repo-Commit", COMMIT)
        if error_code:
            self.send_header("X-Error-Code", error_code)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def _tiny_gguf(path: Path) -> bytes:
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_name("tiny test model")
    writer.add_block_count(1)
    writer.add_context_length(64)
    writer.add_tensor("token_embd.weight", np.arange(64 * 64, dtype=np.float32).reshape(64, 64))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path.read_bytes()


def _write_catalog(path: Path, tiny_size: int) -> None:
    path.write_text(
        f"""
["tiny"]
repo = "{REPO}"
file = "{FILE}"
size_bytes = 20000
tokenizer = "test"
role = "both"
description = "a tiny GGUF for tests"

["tiny-exact"]
repo = "{REPO}"
file = "{FILE}"
size_bytes = {tiny_size + 1}
size_exact = true
tokenizer = "test"
role = "slm"
description = "the same file, with a wrong exact size"

["junk"]
repo = "{REPO}"
file = "{JUNK_FILE}"
size_bytes = 100
tokenizer = "test"
role = "llm"
description = "not a GGUF"

["missing"]
repo = "{REPO}"
file = "missing.gguf"
size_bytes = 100
tokenizer = "test"
role = "llm"
description = "not on the server"
""",
        encoding="utf-8",
    )


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    """The fake Hub, serving a test catalogue's files, with downloads allowed (conftest sets HF_HUB_OFFLINE=1)."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    content = _tiny_gguf(tmp_path / "tiny.gguf")
    catalog = tmp_path / "catalog.toml"
    _write_catalog(catalog, len(content))
    monkeypatch.setenv("DRIFT_LOCAL_CATALOG", str(catalog))
    # Chunks smaller than the file, so that the bytes received before a cut reach the disk.
    monkeypatch.setattr(huggingface_hub.constants, "DOWNLOAD_CHUNK_SIZE", 1024)

    server = ThreadingHTTPServer(("127.0.0.1", 0), _HubHandler)
    server.daemon_threads = False  # tracked, so that server_close() joins the handler threads
    fake = FakeHub(endpoint=f"http://127.0.0.1:{server.server_address[1]}")
    fake.files = {(REPO, FILE): content, (REPO, JUNK_FILE): b"<html>not a model</html>" * 100}
    server.hub = fake  # type: ignore[attr-defined]
    serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    watchdog = threading.Timer(SERVER_LIFETIME_S, server.shutdown)
    serving.start()
    watchdog.start()
    try:
        yield fake
    finally:
        watchdog.cancel()
        server.shutdown()
        server.server_close()
        serving.join(timeout=5)
        watchdog.join(timeout=5)
        assert not serving.is_alive() and not watchdog.is_alive()


def _leftovers() -> list[Path]:
    """Model files a later load could pick up, and temporary downloads."""
    return sorted(p for p in config.models_dir().rglob("*") if p.suffix in (".gguf", ".incomplete"))


def test_pull_catalogue_name(hub: FakeHub) -> None:
    path = pull("tiny", endpoint=hub.endpoint, progress=False)

    assert path == config.models_dir() / "tiny" / FILE
    assert path.read_bytes() == hub.files[(REPO, FILE)]
    resolved = resolve_model("tiny")
    assert (resolved.path, resolved.source) == (path, "catalog")


def test_pull_again_keeps_the_file(hub: FakeHub) -> None:
    first = pull("tiny", endpoint=hub.endpoint, progress=False)
    gets_before = sum(r.startswith("GET") for r in hub.requests)

    assert pull("tiny", endpoint=hub.endpoint, progress=False) == first
    assert sum(r.startswith("GET") for r in hub.requests) == gets_before


def test_pull_repo_file_spec(hub: FakeHub) -> None:
    spec = f"{REPO}/{FILE}"

    path = pull(spec, endpoint=hub.endpoint, progress=False)

    assert path == config.models_dir() / "test-org--Tiny-GGUF" / FILE
    assert resolve_model(spec).path == path
    assert resolve_model(spec).source == "hub"


def test_dropped_connection_is_resumed(hub: FakeHub) -> None:
    hub.cut_short = 1

    path = pull("tiny", endpoint=hub.endpoint, progress=False)

    assert path.read_bytes() == hub.files[(REPO, FILE)]
    assert any("range=bytes=" in r for r in hub.requests)


def test_interrupted_download_leaves_no_file(hub: FakeHub) -> None:
    hub.cut_short = 1
    hub.refuse_resume = True

    with pytest.raises(DriftError, match=f"{REPO}/{FILE}"):
        pull("tiny", endpoint=hub.endpoint, progress=False)

    assert _leftovers() == []
    with pytest.raises(DriftError, match="not downloaded"):
        resolve_model("tiny")


def test_non_gguf_download_is_rejected_and_deleted(hub: FakeHub) -> None:
    with pytest.raises(DriftError, match="not a GGUF file"):
        pull("junk", endpoint=hub.endpoint, progress=False)

    assert _leftovers() == []


def test_wrong_exact_size_is_rejected_and_deleted(hub: FakeHub) -> None:
    with pytest.raises(DriftError, match="bytes instead of"):
        pull("tiny-exact", endpoint=hub.endpoint, progress=False)

    assert _leftovers() == []


def test_missing_file_and_repo_are_named(hub: FakeHub) -> None:
    with pytest.raises(DriftError, match=f"missing.gguf not found in {REPO}"):
        pull("missing", endpoint=hub.endpoint, progress=False)
    with pytest.raises(DriftError, match="repository nobody/Nothing-GGUF not found"):
        pull("nobody/Nothing-GGUF/x.gguf", endpoint=hub.endpoint, progress=False)


def test_offline_is_a_clear_error(hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    with pytest.raises(DriftError, match=r"offline \(HF_HUB_OFFLINE=1\): cannot download tiny"):
        pull("tiny", endpoint=hub.endpoint, progress=False)

    assert hub.requests == []


def test_offline_pull_of_a_downloaded_model_returns_it(
    hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = pull("tiny", endpoint=hub.endpoint, progress=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    assert pull("tiny", progress=False) == path


def test_unknown_name_is_rejected_before_any_request(hub: FakeHub) -> None:
    with pytest.raises(DriftError, match="unknown model 'nope'"):
        pull("nope", endpoint=hub.endpoint, progress=False)
    assert hub.requests == []


def test_embedded_model_needs_no_download() -> None:
    assert pull("smollm2-135m", progress=False) == resolve_model(None).path


def test_cli_pull_list_path_rm(cli, 
    hub: FakeHub, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = cli("models", "pull", "tiny", "--endpoint", hub.endpoint)
    assert code == 0, err
    expected = config.models_dir() / "tiny" / FILE

    code, out, _ = cli("models", "list", "--json")
    rows = {row["name"]: row for row in json.loads(out)}
    assert code == 0
    assert rows["tiny"]["downloaded"] is True
    assert rows["tiny"]["path"] == str(expected)
    assert rows["junk"]["downloaded"] is False

    code, out, _ = cli("models", "path", "tiny")
    assert (code, out) == (0, f"{expected}\n")

    code, _, _ = cli("models", "rm", "tiny", "--yes")
    assert code == 0
    assert not expected.exists()
    assert not (config.models_dir() / "tiny").exists()

    code, out, err = cli("models", "path", "tiny")
    assert (code, out) == (1, "")
    assert "not downloaded" in err and "drift-local models pull tiny" in err


def test_cli_lists_and_removes_repo_file_downloads(cli, 
    hub: FakeHub, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = f"{REPO}/{FILE}"
    pull(spec, endpoint=hub.endpoint, progress=False)

    _, out, _ = cli("models", "list", "--json")
    rows = {row["name"]: row for row in json.loads(out)}
    assert rows[spec]["downloaded"] is True
    assert rows[spec]["repo"] == REPO

    code, _, err = cli("models", "rm", spec, "--yes")
    assert code == 0, err
    assert _leftovers() == []


def test_cli_pull_errors_are_one_line(cli, 
    hub: FakeHub, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = cli("models", "pull", "missing", "--endpoint", hub.endpoint)

    assert code == 1
    assert "Traceback" not in err
    assert err.splitlines()[0].startswith("error: file missing.gguf not found")
