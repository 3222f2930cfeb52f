"""The intake stage's part of the ledger: roots, files, versions, S3 objects, extractions.

Handed to :class:`docproc.intake.Intake` (and a scan), and to nothing else
that writes: the dispatch and publishing stages never touch these rows.
"""

from __future__ import annotations

from dataclasses import dataclass

from docproc.ledger.connection import Ledger
from docproc.ledger.intake.extractions import ExtractionLedger
from docproc.ledger.intake.files import FileLedger, Seen

__all__ = ["ExtractionLedger", "FileLedger", "IntakeLedger", "Seen"]


@dataclass(frozen=True, slots=True)
class IntakeLedger:
    """The rooms of the intake stage."""

    files: FileLedger  # roots, files (paths and S3 objects), versions
    extractions: ExtractionLedger  # what extraction made of each version

    @classmethod
    def on(cls, ledger: Ledger) -> IntakeLedger:
        return cls(FileLedger(ledger), ExtractionLedger(ledger))
