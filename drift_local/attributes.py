"""The paper's attribute system prompts (Table 5), shipped as package data byte-for-byte."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from importlib import resources

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass(frozen=True)
class Attribute:
    name: str
    prompt: str


@dataclass(frozen=True)
class AttributeSet:
    base: str
    attributes: tuple[Attribute, ...]

    @property
    def names(self) -> list[str]:
        return [a.name for a in self.attributes]

    @property
    def prompts(self) -> list[str]:
        return [a.prompt for a in self.attributes]


def paper_attributes() -> AttributeSet:
    text = resources.files("drift_local.data").joinpath("attributes.toml").read_text(encoding="utf-8")
    raw = tomllib.loads(text)
    attrs = tuple(Attribute(name, prompt) for name, prompt in raw["attributes"].items())
    return AttributeSet(base=raw["base"], attributes=attrs)
