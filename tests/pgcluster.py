"""A throwaway PostgreSQL cluster, for the tests (tests/pgserver.py) and the benchmarks.

``initdb`` in a temporary directory, ``pg_ctl start`` on 127.0.0.1 at a free
port (and a Unix socket in the same directory), stopped with ``-m immediate``
and removed at the end. PostgreSQL refuses to run as root, so as root (CI)
the binaries run as the ``postgres`` system user that Debian's package
creates, in a directory that user owns. No pytest here: ``bench/`` imports it.

Roles: ``postgres`` (superuser, trust on the socket: the cluster's own
administration), ``docproc`` (trust on 127.0.0.1: what most tests connect as)
and ``docproc_pw`` (password, scram-sha-256 on 127.0.0.1: the password paths).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path

import psycopg

PASSWORD_ROLE = "docproc_pw"  # noqa: S105 - a role name
PASSWORD = "s3cret-Pa55-never-shown"  # noqa: S105 - the throwaway cluster's test role
TRUST_ROLE = "docproc"
_WAIT_S = 30.0
_HBA = f"""\
local all all trust
host all {PASSWORD_ROLE} 127.0.0.1/32 scram-sha-256
host all all 127.0.0.1/32 trust
"""


class NoServerError(RuntimeError):
    """PostgreSQL's server binaries are not installed."""


def bindir() -> Path:
    """Where Debian's newest installed PostgreSQL server binaries are.

    Raises:
        NoServerError: none is installed.
    """
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise NoServerError(
            "PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin/initdb):"
            " run `make system-deps`"
        )
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PgServer:
    """One running cluster; ``url(db)`` for a database in it, ``restart()`` mid-test."""

    bindir: Path
    home: Path
    port: int = field(default_factory=_free_port)
    _names: Iterator[int] = field(default_factory=lambda: count(1))

    @property
    def data(self) -> Path:
        return self.home / "data"

    def _run(self, *args: str) -> None:
        as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        done = subprocess.run(
            [*as_postgres, *args], capture_output=True, text=True, timeout=_WAIT_S, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {done.stdout}{done.stderr}")

    def init(self) -> None:
        self._run(
            str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres",
            "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C.UTF-8",
        )  # fmt: skip
        (self.data / "pg_hba.conf").write_text(_HBA)
        settings = (
            f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
            f"unix_socket_directories = '{self.home}'\nfsync = off\n"
            "full_page_writes = off\nmax_connections = 50\n"
            "password_encryption = 'scram-sha-256'\n"
        )
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(settings)

    def start(self) -> None:
        self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.home / "log"),
            "-w", "-t", str(int(_WAIT_S)), "start",
        )  # fmt: skip

    def stop(self) -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                  "-w", "-t", str(int(_WAIT_S)), "stop")  # fmt: skip

    def restart(self) -> None:
        """Stop at once (every connection drops, as in a crash or failover), start again.

        Commits survive: ``fsync = off`` only skips the flush to disk, and the
        operating system keeps what was written (``synchronous_commit`` stays on).
        """
        self.stop()
        self.start()

    def admin(self, sql: str) -> None:
        """Run ``sql`` as the superuser, over the socket, outside a transaction."""
        with psycopg.connect(
            host=str(self.home), port=self.port, user="postgres", dbname="postgres",
            autocommit=True, connect_timeout=10,
        ) as conn:  # fmt: skip
            conn.execute(sql)

    def url(self, db: str, *, user: str = TRUST_ROLE) -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{db}"

    def new_database(self) -> str:
        """A fresh empty database owned by the trust role; its name."""
        name = f"t{next(self._names)}"
        self.admin(f"CREATE DATABASE {name} OWNER {TRUST_ROLE} TEMPLATE template0")
        return name


@contextmanager
def running_cluster() -> Iterator[PgServer]:
    """A cluster started now, with its roles, stopped and removed when the block ends.

    Raises:
        NoServerError: PostgreSQL's server binaries are not installed.
    """
    where = bindir()
    home = Path(tempfile.mkdtemp(prefix="docproc-pg-"))
    if os.geteuid() == 0:
        shutil.chown(home, "postgres", "postgres")
    server = PgServer(where, home)
    try:
        server.init()
        server.start()
        server.admin(f"CREATE ROLE {TRUST_ROLE} LOGIN")
        server.admin(f"CREATE ROLE {PASSWORD_ROLE} LOGIN PASSWORD '{PASSWORD}'")
        yield server
    finally:
        try:
            if (server.data / "postmaster.pid").exists():
                server.stop()
        finally:
            shutil.rmtree(home, ignore_errors=True)
