"""Real storage faults for tests: small tmpfs mounts made (and filled, remounted) by the test.

Mounting needs root (CI runs the suite as root). Where the test cannot
mount, :func:`cannot_mount` says why and the test is skipped with that
reason; nothing here is a mock of the filesystem.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

FILLER = ".filler"  # hidden: the watcher never takes it as a document


@functools.cache
def cannot_mount() -> str | None:
    """Why this process cannot mount a tmpfs (``None``: it can)."""
    if os.geteuid() != 0:
        return "mounting a tmpfs needs root (CI runs the suite as root)"
    if shutil.which("mount") is None or shutil.which("umount") is None:
        return "mount(8) and umount(8) are not installed"
    probe = Path(tempfile.mkdtemp(prefix="docproc-tmpfs-probe-"))
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)],
                              capture_output=True, text=True, check=False)  # fmt: skip
        if done.returncode != 0:
            return f"mount -t tmpfs failed here: {done.stderr.strip()}"
        subprocess.run(["umount", str(probe)], check=True)
    finally:
        probe.rmdir()
    return None


class Tmpfs:
    """A tmpfs of ``size`` (``"2m"``) mounted at ``path`` (created if missing)."""

    def __init__(self, path: Path, size: str, *, mode: str = "0755") -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        _run("mount", "-t", "tmpfs", "-o", f"size={size},mode={mode}", "tmpfs", str(path))
        self.mounted = True

    def fill(self, name: str = FILLER, *, leave: int = 0) -> Path:
        """Write ``name`` until the filesystem is full (ENOSPC), then give back ``leave``
        bytes; its path."""
        filler = self.path / name
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for size in (1 << 20, 65536, 4096, 1):  # big blocks, then the last bytes
                for _ in range(1_000_000):  # bounded
                    try:
                        os.write(fd, b"\0" * size)
                    except OSError as exc:
                        if exc.errno != errno.ENOSPC:
                            raise
                        break
            if leave:
                os.ftruncate(fd, max(0, os.fstat(fd).st_size - leave))
        finally:
            os.close(fd)
        return filler

    def free(self, name: str = FILLER) -> None:
        (self.path / name).unlink(missing_ok=True)

    def read_only(self) -> None:
        _run("mount", "-o", "remount,ro", str(self.path))

    def read_write(self) -> None:
        _run("mount", "-o", "remount,rw", str(self.path))

    def unmount(self) -> None:
        if self.mounted:
            self.mounted = False
            if subprocess.run(["umount", str(self.path)], check=False).returncode != 0:
                _run("umount", "-l", str(self.path))  # still busy: detach it


@contextlib.contextmanager
def mounted(path: Path, size: str, *, mode: str = "0755") -> Iterator[Tmpfs]:
    """A tmpfs at ``path`` for the duration of the block."""
    fs = Tmpfs(path, size, mode=mode)
    try:
        yield fs
    finally:
        fs.unmount()


def _run(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True)
