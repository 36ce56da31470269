"""Download GGUF models from the Hugging Face Hub (or a mirror) into the models folder.

huggingface_hub does the transfer: it honours HF_ENDPOINT, HF_TOKEN and HF_HUB_OFFLINE, shows a
tqdm bar with the rate and ETA on a terminal, and downloads into a temporary `*.incomplete` file that
is renamed into place only once every byte announced by the server has arrived. A dropped connection
is resumed with Range requests within the same pull; a pull that fails outright deletes its
temporary file, so nothing half-written ever sits at the final path. On top of that, `pull` checks
the GGUF magic (and the exact size, where the catalogue knows it) and deletes a file that fails.

huggingface_hub is imported inside the functions: the CLI imports this module for `--help` too.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from drift_local.catalog.catalog import (
    embedded_model_path,
    hub_download_dir,
    is_embedded,
    load_catalog,
    model_dir,
    split_repo_file,
)
from drift_local.errors import DriftError

GGUF_MAGIC = b"GGUF"
_TRUE = {"1", "true", "yes", "on"}
_NETWORK_HINT = "check your connection, or download from a mirror with --endpoint URL (or HF_ENDPOINT)"


@dataclass(frozen=True)
class PullTarget:
    """What to download and where to put it. exact_size: checked after download when known."""

    spec: str
    repo: str
    file: str
    local_dir: Path
    exact_size: int | None = None

    @property
    def path(self) -> Path:
        return self.local_dir / self.file

    @property
    def remote(self) -> str:
        return f"{self.repo}/{self.file}"


def pull_target(spec: str) -> PullTarget:
    """A catalogue name, or "REPO/FILE.gguf" for any other file on the Hub."""
    entry = load_catalog().get(spec)
    if entry is not None:
        exact_size = entry.size_bytes if entry.size_exact else None
        return PullTarget(spec, entry.repo, entry.file, model_dir(entry), exact_size)
    repo_file = split_repo_file(spec)
    if repo_file is None:
        raise DriftError(
            f"unknown model '{spec}'",
            hint="pull a name from `drift-local models list`, or OWNER/REPO/FILE.gguf for any GGUF on Hugging Face",
        )
    repo, file = repo_file
    return PullTarget(spec, repo, file, hub_download_dir(repo))


def pull(spec: str, *, endpoint: str | None = None, revision: str | None = None, progress: bool = True) -> Path:
    """Download a model (catalogue name or REPO/FILE.gguf) unless it is already there; return its path."""
    spec = spec.strip()
    if is_embedded(spec):
        return embedded_model_path()
    target = pull_target(spec)
    if _offline():
        if not target.path.is_file():
            raise DriftError(
                f"offline (HF_HUB_OFFLINE=1): cannot download {spec}",
                hint="unset HF_HUB_OFFLINE to download it, or pass the path of a .gguf file you already have",
            )
        path = target.path
    else:
        path = _download(target, endpoint=endpoint, revision=revision, progress=progress)
    _verify(path, target)
    return path


def _offline() -> bool:
    from huggingface_hub import constants

    # huggingface_hub reads HF_HUB_OFFLINE once, at import; read it again in case it changed since.
    return constants.is_offline_mode() or os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


def _download(target: PullTarget, *, endpoint: str | None, revision: str | None, progress: bool) -> Path:
    import httpx2
    from huggingface_hub import hf_hub_download
    from huggingface_hub.utils import silent_tqdm

    # huggingface_hub retries a failed connection five times, logging a raw line each time;
    # the one error below says what happened, so its warnings stay quiet.
    hub_log = logging.getLogger("huggingface_hub")
    level = hub_log.level
    hub_log.setLevel(logging.ERROR)
    try:
        downloaded = hf_hub_download(
            target.repo,
            target.file,
            local_dir=target.local_dir,
            endpoint=endpoint,
            revision=revision,
            tqdm_class=None if progress else silent_tqdm,
        )
    except (OSError, ValueError, httpx2.HTTPError) as exc:
        raise _download_error(exc, target, endpoint=endpoint, revision=revision) from exc
    finally:
        hub_log.setLevel(level)
    return Path(downloaded)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _download_error(exc: Exception, target: PullTarget, *, endpoint: str | None, revision: str | None) -> DriftError:
    """One actionable line for whatever huggingface_hub or the network raised."""
    from huggingface_hub import constants, errors

    where = endpoint or constants.ENDPOINT
    if isinstance(exc, errors.OfflineModeIsEnabled):
        return DriftError(f"offline (HF_HUB_OFFLINE=1): cannot download {target.spec}", hint="unset HF_HUB_OFFLINE")
    if isinstance(exc, errors.GatedRepoError):
        return DriftError(
            f"{target.repo} is gated on {where}",
            hint="accept its licence on the model page, then log in with `hf auth login` (or set HF_TOKEN)",
        )
    if isinstance(exc, errors.RepositoryNotFoundError):
        return DriftError(
            f"repository {target.repo} not found on {where}",
            hint="check the name (`drift-local models list`) and --endpoint",
        )
    if isinstance(exc, errors.RevisionNotFoundError):
        return DriftError(f"revision '{revision}' not found in {target.repo}", hint="check --revision")
    if isinstance(exc, errors.RemoteEntryNotFoundError):
        return DriftError(
            f"file {target.file} not found in {target.repo} on {where}",
            hint="check the file name on the repository's 'Files' page",
        )
    if isinstance(exc, errors.LocalEntryNotFoundError):
        cause = f" ({_first_line(exc.__cause__)})" if exc.__cause__ else ""
        return DriftError(f"cannot reach {where} to download {target.remote}{cause}", hint=_NETWORK_HINT)
    if isinstance(exc, errors.HfHubHTTPError):
        status = getattr(exc.response, "status_code", "error")
        return DriftError(f"downloading {target.remote} from {where} failed: HTTP {status}", hint=_NETWORK_HINT)
    if isinstance(exc, ValueError):
        return DriftError(
            f"cannot download {target.remote}: {_first_line(exc)}",
            hint="a Hub file is OWNER/REPO/FILE.gguf; check the name",
        )
    return DriftError(
        f"downloading {target.remote} failed: {_first_line(exc)}",
        hint=f"run the same pull again; {_NETWORK_HINT}",
    )


def _verification_problem(path: Path, exact_size: int | None) -> str | None:
    with path.open("rb") as file:
        magic = file.read(len(GGUF_MAGIC))
    if magic != GGUF_MAGIC:
        return "is not a GGUF file"
    size = path.stat().st_size
    if exact_size is not None and size != exact_size:
        return f"has {size} bytes instead of {exact_size}"
    return None


def _verify(path: Path, target: PullTarget) -> None:
    """Delete and reject a file that a later load must not pick up."""
    problem = _verification_problem(path, target.exact_size)
    if problem is None:
        return
    path.unlink(missing_ok=True)
    raise DriftError(
        f"the file downloaded for {target.spec} ({target.remote}) {problem}; it was deleted",
        hint="check that the name points at a .gguf file, then pull again",
    )
