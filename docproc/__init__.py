"""docproc: a document-processing daemon with an auditable ledger."""

__version__ = "0.1.0.dev0"
