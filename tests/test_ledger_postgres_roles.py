"""Operating a PostgreSQL ledger: the roles the README's GRANTs make, ``config check``,
``status`` with the server away. Real server (tests/pgserver.py), the real CLI."""

from __future__ import annotations

from itertools import count
from pathlib import Path

import psycopg
import pytest

from tests.clitools import docproc
from tests.pgserver import PgServer

_ROLES = count(1)
# The README's GRANTs ("Ledger on PostgreSQL"), {db} and {role} filled in.
READ_ONLY = """
GRANT CONNECT ON DATABASE {db} TO {role};
GRANT USAGE ON SCHEMA public TO {role};
GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role};
"""
OPERATOR = (
    READ_ONLY
    + """
GRANT INSERT ON operator_requests, events TO {role};
GRANT INSERT, UPDATE, DELETE ON ledger_commits TO {role};
"""
)
READS = (
    ("status",),
    ("status", "--json"),
    ("ledger", "files"),
    ("ledger", "batches"),
    ("ledger", "costs"),  # needs the dialect's rounding (branch i13param) on PostgreSQL
    ("ledger", "events"),
    ("ledger", "requests"),
    ("ledger", "verify"),
    ("ledger", "show", "1"),
    ("ledger", "text", "1"),
)


def _config(
    tmp_path: Path, url: str, name: str = "docproc.toml", inbox: Path | None = None
) -> Path:
    config = tmp_path / name
    inbox = inbox or tmp_path / "inbox"
    inbox.mkdir(exist_ok=True)
    watch = f'[[watch]]\npath = "{inbox}"\n'
    config.write_text(
        f'state_dir = "{tmp_path / "state"}"\n[batch]\nmax_wait = 0.2\npoll_interval = 0.2\n'
        f'[ledger]\nurl = "{url}"\n{watch}'
    )
    return config


def _role(pg_server: PgServer, db: str, grants: str) -> str:
    """A new login role with only ``grants`` on ``db`` (made by the tables' owner); its name."""
    role = f"{db}_role{next(_ROLES)}"
    pg_server.admin(f"CREATE ROLE {role} LOGIN")
    pg_server.admin(f"REVOKE ALL ON DATABASE {db} FROM PUBLIC")
    with psycopg.connect(pg_server.url(db), autocommit=True, connect_timeout=10) as owner:
        owner.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        owner.execute(grants.format(db=db, role=role))
    return role


@pytest.fixture(scope="module")
def worked(pg_server: PgServer, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """A database whose ledger a daemon filled (three files summarised); its name, a folder."""
    tmp = tmp_path_factory.mktemp("worked")
    db = pg_server.new_database()
    inbox = tmp / "inbox"
    inbox.mkdir()
    for n in range(3):
        (inbox / f"doc{n}.txt").write_text(f"Document {n}. It has two sentences about {n}.")
    config = _config(tmp, pg_server.url(db), inbox=inbox)
    done = docproc("run", "--once", "--config", config, state=tmp / "state")
    assert done.returncode == 0, done.stdout + done.stderr
    return db, tmp


def test_a_read_only_role_is_enough_for_status_and_every_ledger_read(
    pg_server: PgServer, worked: tuple[str, Path]
) -> None:
    db, tmp = worked
    role = _role(pg_server, db, READ_ONLY)
    config = _config(tmp, pg_server.url(db, user=role), name=f"{role}.toml")
    for args in READS:
        out = docproc(*args, "--config", config, state=tmp / "state")
        assert out.returncode == 0, (args, out.stderr)
    status = docproc("status", "--config", config, state=tmp / "state").stdout
    assert "summarised" in status or "written" in status, status
    refused = docproc("ledger", "retry", "--wait", "0", "--config", config, state=tmp / "state")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    checked = docproc("config", "check", config, state=tmp / "state")
    assert checked.returncode == 0, checked.stderr
    assert f"role {role} read-only" in checked.stdout, checked.stdout


def test_an_operator_role_records_requests_and_nothing_else(
    pg_server: PgServer, worked: tuple[str, Path]
) -> None:
    db, tmp = worked
    role = _role(pg_server, db, OPERATOR)
    config = _config(tmp, pg_server.url(db, user=role), name=f"{role}.toml")
    asked = docproc("ledger", "retry", "--wait", "0", "--config", config, state=tmp / "state")
    assert asked.returncode == 0, asked.stderr
    assert "recorded as request" in asked.stdout, asked.stdout
    verified = docproc("ledger", "verify", "--config", config, state=tmp / "state")
    assert verified.returncode == 0, verified.stderr
    inbox = tmp / "inbox"
    scan = docproc("scan", "--config", config, "--settle", "0", inbox, state=tmp / "state")
    assert scan.returncode == 1 and "Traceback" not in scan.stderr, scan.stderr
    checked = docproc("config", "check", config, state=tmp / "state")
    assert f"role {role} may record requests" in checked.stdout, checked.stdout


def test_config_check_says_reachable_as_whom_and_schema_current(
    pg_server: PgServer, pg_url: str, tmp_path: Path
) -> None:
    config = _config(tmp_path, pg_url)
    fresh = docproc("config", "check", config, state=tmp_path / "state")
    assert fresh.returncode == 1, fresh.stdout + fresh.stderr
    where = pg_url.removeprefix("postgresql://")
    assert f"ledger: {where} reachable (PostgreSQL " in fresh.stdout, fresh.stdout
    assert "role docproc may create and migrate the schema" in fresh.stdout, fresh.stdout
    pending = fresh.stderr.strip()
    assert pending.startswith("docproc: ledger schema not current: "), pending
    assert "initial" in pending or "(" in pending, pending
    assert "\n" not in pending
    status = docproc("status", "--config", config, state=tmp_path / "state")
    assert status.returncode == 1 and "needs migrating" in status.stderr
    scanned = docproc("scan", "--config", config, "--settle", "0", tmp_path, state=tmp_path / "s")
    assert "Traceback" not in scanned.stderr, scanned.stderr
    current = docproc("config", "check", config, state=tmp_path / "state")
    assert current.returncode == 0, current.stderr
    assert "role docproc may write (run, scan)" in current.stdout
    assert current.stdout.strip().endswith("ledger schema: current"), current.stdout


def test_status_and_config_check_say_unreachable_in_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = _config(tmp_path, f"postgresql://docproc@127.0.0.1:{port}/nowhere")
    for args in (("status",), ("config", "check", str(config)), ("ledger", "files")):
        out = docproc(*args, "--config", config, state=tmp_path / "state")
        assert out.returncode == 1, (args, out.stdout, out.stderr)
        line = out.stderr.strip()
        assert line.startswith(f"docproc: ledger unreachable: docproc@127.0.0.1:{port}/nowhere: ")
        assert "\n" not in line and "Traceback" not in line, line
