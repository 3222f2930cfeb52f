"""The ``[storage]`` section: the free space the state directory keeps for the ledger."""

from __future__ import annotations

from docproc.config.settings import StorageSettings
from docproc.config.table import Table


def storage(t: Table) -> StorageSettings:
    """``min_free_mb``: below it no new work is taken; unset: the default floor."""
    given = "min_free_mb" in t.data
    floor = t.integer("min_free_mb", 0, minimum=0)
    t.finish()
    return StorageSettings(min_free_mb=floor if given else None)
