"""The ledger: every file, version, job, batch, result and sidecar docproc has seen.

Each stage imports the submodule that owns its part of the data; nothing is
re-exported here, so the import contracts can say who may use which part.
"""
