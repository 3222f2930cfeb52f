"""The ``docproc`` command line: thin over the ledger and the pipeline; no SQL here.

Every command takes ``--config`` and ``--state-dir`` (before or after the
command name); ``DOCPROC_STATE_DIR`` works everywhere too. Errors of the
configuration exit 2 with one line naming the key; other expected errors
exit 1 with one line; nothing a user can cause prints a traceback.

One module per group of commands: :mod:`.run` (the daemon, scan),
:mod:`.status` (status, config check), :mod:`.queries` (reading the ledger),
:mod:`.operations` (what changes docproc's work), :mod:`.costing` (estimate,
reprocess), :mod:`.ledgercopy` (ledger copy), :mod:`.shell` (tab
completion); :mod:`.common` holds what they share and :mod:`.root` the group.
"""

from __future__ import annotations

from docproc.cli.costing import estimate_command, reprocess
from docproc.cli.ledgercopy import ledger_copy
from docproc.cli.operations import cancel, ledger_import_sidecars, ledger_retry
from docproc.cli.queries import ledger
from docproc.cli.root import main
from docproc.cli.run import run, scan
from docproc.cli.shell import completion
from docproc.cli.status import config_group, status

__all__ = ["main"]

_COMMANDS = (
    run,
    scan,
    status,
    config_group,
    ledger,
    cancel,
    estimate_command,
    reprocess,
    completion,
)
for _command in _COMMANDS:
    main.add_command(_command)
ledger.add_command(ledger_retry)
ledger.add_command(ledger_import_sidecars)
ledger.add_command(ledger_copy)
