"""Running a helper program (tesseract, soffice) from a worker, under a timeout.

The helper starts in a process group of its own, inside the worker's
session; on timeout its whole group is killed (soffice forks soffice.bin),
and the call fails with a reason. Should the worker be killed first (the
document's timeout), the pool kills the worker's whole session, helpers
included (:func:`docproc.extract.child.kill_session`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from docproc.errors import PermanentExtractionError

_KILL_WAIT = 5.0


def run(
    argv: Sequence[str],
    *,
    timeout: float,
    what: str,
    stdin: bytes = b"",
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> bytes:
    """Run ``argv``, feed it ``stdin``, return its stdout.

    Raises:
        PermanentExtractionError: it ran past ``timeout`` (its group is killed),
            could not start, or exited non-zero; the reason names ``what``.
    """
    try:
        child = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            process_group=0,  # its own group: a timeout kills it and everything it forked
        )
    except OSError as exc:
        raise PermanentExtractionError(f"{what} could not be started ({exc.strerror})") from exc
    with child:  # closes the pipes and reaps the process on every path
        try:
            out, err = child.communicate(stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(child)
            raise PermanentExtractionError(f"{what} timed out after {timeout:g} s") from None
        except BaseException:
            _kill_group(child)
            raise
    if child.returncode != 0:
        detail = " ".join(err.decode("utf-8", "replace").split())[:200]
        raise PermanentExtractionError(f"{what} failed (exit {child.returncode}): {detail}")
    return out


def _kill_group(child: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGKILL)
    try:
        child.communicate(timeout=_KILL_WAIT)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait(_KILL_WAIT)
