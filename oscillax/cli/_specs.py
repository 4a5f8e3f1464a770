"""The sweep specs shipped in `oscillax/specs/` (package data, read with importlib.resources)."""

from __future__ import annotations

import contextlib
from importlib import resources
from pathlib import Path

PACKAGE = "oscillax.specs"
DEFAULT = "euler_stability"


def _files():
    return resources.files(PACKAGE)


def names() -> tuple[str, ...]:
    """The shipped spec names (file stems), the default first."""
    found = sorted(p.name[: -len(".toml")] for p in _files().iterdir()
                   if p.name.endswith(".toml"))
    return tuple(sorted(found, key=lambda n: n != DEFAULT))


def text(name: str) -> str:
    return (_files() / f"{name}.toml").read_text(encoding="utf-8")


def question(name: str) -> str:
    """A spec's one-line question: its first comment line."""
    for line in text(name).splitlines():
        if line.strip().startswith("#"):
            return line.strip().lstrip("#").strip()
    return ""


def lookup(name: str) -> str | None:
    """The shipped spec called `name` (with or without `.toml`), or None."""
    stem = name[: -len(".toml")] if name.endswith(".toml") else name
    return stem if stem in names() else None


@contextlib.contextmanager
def as_path(name: str):
    """A file system path of the shipped spec for the duration of the block."""
    with resources.as_file(_files() / f"{name}.toml") as p:
        yield Path(p)
