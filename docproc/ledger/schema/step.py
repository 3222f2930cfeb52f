"""One named migration: its name, what it does, and its SQL (SQLite's)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Step:
    """A migration as it was released: never edited afterwards."""

    name: str
    doc: str
    sql: str
    script: bool = True  # several statements (``executescript``), or one (``execute``)
