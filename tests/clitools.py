"""Running the real ``docproc`` command in a subprocess, for tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

TIMEOUT_S = 240


# As root, file modes do not stop reads; this drops the capabilities that let
# root ignore them, so "permission denied" can be tested for real.
AS_ORDINARY_USER = (
    ["setpriv", "--bounding-set=-dac_override,-dac_read_search"] if os.geteuid() == 0 else []
)


def docproc(
    *args: str | Path,
    state: Path,
    cwd: Path | None = None,
    prefix: list[str] | None = None,
    env: dict[str, str] | None = None,
    **kwargs: Any,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m docproc ARGS`` with DOCPROC_STATE_DIR=STATE; capture its output.

    ``env`` replaces the inherited environment (DOCPROC_STATE_DIR is still set).
    """
    env = {**(os.environ if env is None else env), "DOCPROC_STATE_DIR": str(state),
           "PYTHONUNBUFFERED": "1"}  # fmt: skip
    return subprocess.run(
        [*(prefix or []), sys.executable, "-m", "docproc", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=TIMEOUT_S,
        check=False,
        **kwargs,
    )


def on_engine(tmp: Path, url: str | None) -> list[str]:
    """``--config FILE`` whose ``[ledger] url`` is ``url`` (PostgreSQL); none for SQLite,
    whose ledger is the state directory's file."""
    if url is None:
        return []
    path = tmp / "ledger-only.toml"
    path.write_text(f'[ledger]\nurl = "{url}"\n')
    return ["--config", str(path)]


def files_json(state: Path, *config: str) -> dict[str, dict[str, Any]]:
    """``docproc ledger files --json`` keyed by path (``config``: ``--config FILE``, if any)."""
    out = docproc("ledger", "files", "--json", *config, state=state)
    assert out.returncode == 0, out.stderr
    return {row["path"]: row for row in json.loads(out.stdout)}
