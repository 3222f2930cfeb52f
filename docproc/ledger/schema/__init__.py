"""The ledger's schema history: named, ordered, append-only migrations, as SQL text.

:mod:`docproc.ledger.migrations` applies them to a SQLite ledger; an engine
with its own spelling keeps the same names, in the same order.
"""

from __future__ import annotations

from docproc.ledger.schema.m001_to_m007 import STEPS as _FIRST
from docproc.ledger.schema.m008_to_m014 import STEPS as _LATER
from docproc.ledger.schema.step import Step

STEPS: tuple[Step, ...] = (*_FIRST, *_LATER)

__all__ = ["STEPS", "Step"]
