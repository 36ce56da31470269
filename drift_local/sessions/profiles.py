"""Profile workflows, one per `profile` command: list and show profiles, import a file (a
`profile export` whole, with its attribute choices and fits), export one, add, list or
remove pairs, change attributes. Profiles are created on first use, as `rate` and `import`
always did."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from drift_local.errors import DriftError
from drift_local.store.health import replace_durably
from drift_local.store.importers import EXPORT_FORMAT, ImportResult, read_pairs
from drift_local.store.store import FitRecord, Pair, Profile, ProfileAttribute, ProfileSummary, Store


def existing_or_new(store: Store, name: str, create: bool = True) -> Profile:
    """The named profile; with `create`, made if missing (atomically: two processes may race)."""
    return store.ensure_profile(name) if create else store.get_profile(name)


@dataclass
class ImportOutcome:
    read: ImportResult
    added: int  # pairs new to the profile
    total: int  # pairs it holds now
    attributes: int = 0  # custom attributes added (export files)
    disabled: int = 0  # attributes switched off (export files)
    fits: int = 0  # fit records restored (export files, into a profile with none)


def import_file(name: str, path: Path, *, user: str | None = None, skip_bad: bool = False, create: bool = True) -> ImportOutcome:
    """Add a file's pairs to a profile, in one transaction; pairs already held are not added
    twice. A `profile export` file also brings its custom and disabled attributes and, into a
    profile without fits, its fit history: export then import is lossless."""
    read = read_pairs(path, user=user, skip_bad=skip_bad)
    extras = _export_extras(path) if read.format == EXPORT_FORMAT else None
    with Store.open() as store, store.transaction():
        profile = existing_or_new(store, name, create)
        held = {(p.prompt, p.chosen, p.rejected) for p in store.list_pairs(profile)}
        new = [p for p in read.pairs if (p.prompt, p.chosen, p.rejected) not in held]
        store.add_pairs(profile, new)
        outcome = ImportOutcome(read, len(new), 0)
        if extras is not None:
            _apply_extras(store, profile, extras, outcome)
        outcome.total = store.count_pairs(profile)
    return outcome


def add_pair(name: str, pair: Pair) -> tuple[int, int]:
    """Store one pair (creating the profile); returns its id and the profile's pair count."""
    with Store.open() as store, store.transaction():
        profile = existing_or_new(store, name)
        (pair_id,) = store.add_pairs(profile, [pair])
        return pair_id, store.count_pairs(profile)


def remove_pair(name: str, pair_id: int) -> int:
    """Delete one pair; returns how many the profile holds now."""
    with Store.open() as store:
        profile = store.get_profile(name)
        store.delete_pair(profile, pair_id)
        return store.count_pairs(profile)


def list_profiles() -> list[ProfileSummary]:
    with Store.open() as store:
        return store.list_profiles()


def profile_names(names: list[str] | None = None) -> list[str]:
    """The named profiles, each checked to exist; with no names, every profile."""
    with Store.open() as store:
        return [store.get_profile(name).name for name in names] if names else [p.name for p in store.list_profiles()]


@dataclass
class ProfileFit:
    """What `profile show` reports: a profile, its pairs and its latest fit (with any sLM)."""

    profile: Profile
    n_pairs: int
    fit: FitRecord | None
    stale: bool  # pairs, attributes, method or reward changed since the fit
    top_k: int  # how many attributes decoding uses (the 'attributes' setting)


def profile_fit(name: str) -> ProfileFit:
    """The profile's latest fit, stale or not by the method and reward of the user's settings."""
    from drift_local.config import load_settings
    from drift_local.sessions.fit import fit_status

    settings = load_settings()
    with Store.open() as store:
        profile = store.get_profile(name)
        fit, stale = fit_status(store, profile, settings.method, settings.reward)
        return ProfileFit(profile, store.count_pairs(profile), fit, fit is not None and stale, settings.attributes)


def count_pairs(name: str) -> int:
    with Store.open() as store:
        return store.count_pairs(store.get_profile(name))


def list_pairs(name: str) -> list[Pair]:
    with Store.open() as store:
        return store.list_pairs(store.get_profile(name))


def export_profile(name: str, path: Path | None = None) -> dict:
    """The profile as JSON-able data; with `path`, also written there, all of it or nothing
    (a crash mid-write leaves any older file intact)."""
    with Store.open() as store:
        data = store.export_profile(name)
    if path is not None:
        partial = path.with_name(path.name + ".partial")
        try:
            partial.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
            replace_durably(partial, path)  # fsynced before and after the rename: a power cut keeps one whole file
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise DriftError(f"cannot write {path}: {exc.strerror or exc}") from None
    return data


def create_profile(name: str) -> Profile:
    with Store.open() as store:
        return store.create_profile(name)


def delete_profile(name: str) -> None:
    with Store.open() as store:
        store.delete_profile(name)


def change_attributes(name: str, *, add=(), enable=(), disable=(), remove=()) -> list[ProfileAttribute]:
    """Apply all the changes in one transaction, or none; returns the profile's attributes."""
    with Store.open() as store:
        profile = store.get_profile(name)
        with store.transaction():
            for attribute_name, prompt in add:
                store.add_attribute(profile, attribute_name, prompt)
            for attribute in enable:
                store.set_attribute_enabled(profile, attribute, True)
            for attribute in disable:
                store.set_attribute_enabled(profile, attribute, False)
            for attribute in remove:
                store.remove_attribute(profile, attribute)
        return store.profile_attributes(profile)


# -- export files ---------------------------------------------------------------------------

_FIT_LISTS = ("names", "weights", "preference")


def _export_extras(path: Path) -> dict:
    """The attribute choices and fits of an export file (read_pairs has bounded and parsed it)."""
    document = json.loads(Path(path).read_bytes().decode("utf-8-sig"))
    custom = document.get("custom_attributes", [])
    disabled = document.get("disabled_attributes", [])
    fits = document.get("fits", [])
    if not (isinstance(custom, list) and all(isinstance(a, dict) and isinstance(a.get("name"), str) and isinstance(a.get("prompt"), str) for a in custom)):
        raise DriftError(f"{path}: 'custom_attributes' must be a list of {{name, prompt}} texts")
    if not (isinstance(disabled, list) and all(isinstance(n, str) for n in disabled)):
        raise DriftError(f"{path}: 'disabled_attributes' must be a list of names")
    if not (isinstance(fits, list) and all(_is_fit(f) for f in fits)):
        raise DriftError(f"{path}: 'fits' are malformed", "export the profile again, or import only its pairs as JSONL")
    return {"custom": custom, "disabled": disabled, "fits": fits}


def _is_fit(fit) -> bool:
    def numbers(values):
        return isinstance(values, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values)

    return (
        isinstance(fit, dict)
        and all(isinstance(fit.get(k), str) for k in ("created", "model_id", "method", "reward"))
        and isinstance(fit.get("n_pairs"), int)
        and isinstance(fit.get("names"), list) and all(isinstance(n, str) for n in fit["names"])
        and numbers(fit.get("weights")) and numbers(fit.get("preference"))
        and (fit.get("sign_stability") is None or numbers(fit["sign_stability"]))
        and (fit.get("regularization") is None or numbers([fit["regularization"]]))
        and numbers([fit.get("length_weight", 0.0), fit.get("answer_tokens", 0.0)])
        and all(fit.get(key) is None or (
            isinstance(fit[key], dict) and all(isinstance(k, str) for k in fit[key]) and numbers(list(fit[key].values()))
        ) for key in ("style_weights", "style_ceilings"))
    )


def _apply_extras(store: Store, profile: Profile, extras: dict, outcome: ImportOutcome) -> None:
    have = {a.name: a for a in store.profile_attributes(profile)}
    for attribute in extras["custom"]:
        known = have.get(attribute["name"])
        if known is None:
            store.add_attribute(profile, attribute["name"], attribute["prompt"])
            outcome.attributes += 1
        elif known.prompt != attribute["prompt"]:
            raise DriftError(
                f"profile '{profile.name}' already has an attribute '{attribute['name']}' with another prompt",
                "import into a new profile, or remove that attribute first",
            )
    enabled = {a.name for a in store.profile_attributes(profile) if a.enabled}
    for name in extras["disabled"]:
        if name in enabled:
            store.set_attribute_enabled(profile, name, False)
            outcome.disabled += 1
    if store.latest_fit(profile) is None:
        for fit in reversed(extras["fits"]):  # exported newest first; stored oldest first
            store.save_fit(
                profile, model_id=fit["model_id"], method=fit["method"], reward=fit["reward"], n_pairs=fit["n_pairs"],
                names=fit["names"], weights=fit["weights"], preference=fit["preference"],
                sign_stability=fit.get("sign_stability"), regularization=fit.get("regularization"),
                length_weight=fit.get("length_weight", 0.0), answer_tokens=fit.get("answer_tokens", 0.0),
                style_weights=fit.get("style_weights"), style_ceilings=fit.get("style_ceilings"), created=fit["created"],
            )
            outcome.fits += 1
