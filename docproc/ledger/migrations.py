"""Applying the ledger's schema history (:mod:`docproc.ledger.schema`) to a SQLite ledger.

Each migration and the record of it having run commit together
(``sqlite_utils.Migrations``, table ``_sqlite_migrations``). A released
migration is never edited; a change of schema is a new step at the end of
:mod:`docproc.ledger.schema`. This module is the only user of sqlite-utils.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Callable
from types import ModuleType

from docproc.ledger.schema import STEPS, Step


def _without_dataframes() -> dict[str, ModuleType | None]:
    """Hide pandas and numpy from sqlite-utils' import, if they are not loaded yet.

    sqlite-utils imports both when installed (unstructured brings them) only to
    map their scalar types, which the ledger never stores; the import costs
    about 0.3 s on every command. Restored right after (see the end of imports).
    """
    hidden = {name: sys.modules.get(name) for name in ("pandas", "numpy")}
    for name, module in hidden.items():
        if module is None:
            sys.modules[name] = None  # type: ignore[assignment]  # import raises ImportError
    return hidden


_hidden = _without_dataframes()
from sqlite_utils import Database  # noqa: E402 - must follow the hiding above
from sqlite_utils.migrations import Migrations  # noqa: E402

for _name, _module in _hidden.items():
    if _module is None:
        del sys.modules[_name]

__all__ = ["Database", "applied", "apply", "migrations", "pending"]

migrations = Migrations("docproc")


def _runner(step: Step) -> Callable[[Database], None]:
    def run(db: Database) -> None:
        if step.script:
            db.executescript(step.sql)
        else:
            db.execute(step.sql)

    run.__name__, run.__doc__ = step.name, step.doc
    return run


for _step in STEPS:
    migrations()(_runner(_step))


def apply(conn: sqlite3.Connection) -> None:
    """Apply every pending migration to the ledger on ``conn``."""
    migrations.apply(Database(conn))


def pending(conn: sqlite3.Connection) -> list[str]:
    """Names of the migrations the ledger on ``conn`` has not had yet."""
    return [m.name for m in migrations.pending(Database(conn))]


def applied(conn: sqlite3.Connection) -> list[str]:
    """Names of the migrations applied to the ledger on ``conn``, in order."""
    return [m.name for m in migrations.applied(Database(conn))]
