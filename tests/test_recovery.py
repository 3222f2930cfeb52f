"""Recovery without the ledger (issue 14): sidecars carry their own digest, so a new
state directory adopts docproc's untouched sidecars, and import-sidecars rebuilds costs.

The daemon runs as a real subprocess against the Message Batches test server.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from docproc.ledger.connection import LedgerLocation
from docproc.sidecars import write_atomic
from docproc.sidecars.digest import is_own, markdown_intact, open_json
from docproc.writerlock import WriterLock
from tests.batchserver import FakeBatches
from tests.clitools import docproc
from tests.daemonrun import DaemonProcess, ledger_of, query, write_config
from tests.s3server import Fault, FaultProxy, Moto
from tests.test_daemon_anthropic import KEY, document

pytestmark = pytest.mark.slow


@pytest.fixture
def server() -> Iterator[FakeBatches]:
    with FakeBatches(api_key=KEY, end_after=0.2, seed=3) as fake:
        yield fake


@pytest.fixture
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    return KEY


def config_for(
    tmp_path: Path, inbox: Path, server: FakeBatches, s3_watch: tuple[str, str] | None = None,
    ledger: str | None = None,
) -> Path:  # fmt: skip
    """The daemon on ``inbox`` (or, with ``s3_watch`` = (bucket, endpoint), on the
    bucket's ``docs/`` prefix) with the Message Batches test server."""
    extra = f'[task]\nprovider = "anthropic"\n[anthropic]\nbase_url = "{server.url}"\n'
    if s3_watch is None:
        return write_config(tmp_path, [inbox], extra, ledger=ledger)
    bucket, endpoint = s3_watch
    extra += (f'[[watch]]\ns3 = "s3://{bucket}/docs/"\nendpoint_url = "{endpoint}"\n'
              'region = "us-east-1"\ninterval = 1\n')  # fmt: skip
    return write_config(tmp_path, [], extra)


def sidecars(path: Path) -> tuple[Path, Path]:
    return path.with_name(path.name + ".summary.md"), path.with_name(path.name + ".docproc.json")


def summarise(config: Path, names: list[str]) -> None:
    daemon = DaemonProcess(config)
    try:
        daemon.until(lambda: all(daemon.states().get(n) == "written" for n in names), 90)
    finally:
        assert daemon.stop() == 0


def costs(state: Path, *config: str | Path) -> list[dict[str, object]]:
    out = docproc("ledger", "costs", "--by", "model", "--json", *config, state=state)
    assert out.returncode == 0, out.stderr
    return list(json.loads(out.stdout))


def test_a_new_state_directory_adopts_untouched_sidecars_and_resends_nothing(
    tmp_path: Path, server: FakeBatches, api_key: str, fresh_ledger_url: Callable[[], str | None]
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    names = [f"doc{i}.txt" for i in range(5)]
    for i, name in enumerate(names):
        (inbox / name).write_text(document(i))
    config = config_for(tmp_path, inbox, server, ledger=fresh_ledger_url())
    summarise(config, names)
    first_costs = costs(tmp_path / "state", "--config", config)
    sent_before = server.submitted_ids()
    assert sum(sent_before.values()) == 5
    before = {n: tuple(p.read_bytes() for p in sidecars(inbox / n)) for n in names}

    edited_md = sidecars(inbox / "doc0.txt")[0]
    edited_md.write_text(edited_md.read_text() + "\nMy own note.\n")
    (inbox / "doc1.txt").write_text(document(1) + "A sentence added after the summary.\n")
    (inbox / "new.txt").write_text(document(9))
    shutil.rmtree(tmp_path / "state")  # the ledger is lost (on PostgreSQL: a new database)
    config = config_for(tmp_path, inbox, server, ledger=fresh_ledger_url())

    summarise(config, [*names, "new.txt"])
    ledger = ledger_of(config)
    assert {s for (s,) in query(ledger, "SELECT state FROM file_status")} == {"written"}
    sent = server.submitted_ids()
    assert max(sent.values()) == 1  # no custom_id was ever sent twice
    assert sum(sent.values()) - sum(sent_before.values()) == 2  # new.txt and changed doc1 only
    assert edited_md.read_text().endswith("My own note.\n")  # the edited sidecar: left alone
    for name in ("doc2.txt", "doc3.txt", "doc4.txt"):  # adopted as they were, not rewritten
        assert tuple(p.read_bytes() for p in sidecars(inbox / name)) == before[name]
    assert sidecars(inbox / "doc0.txt")[1].read_bytes() == before["doc0.txt"][1]
    changed = json.loads(sidecars(inbox / "doc1.txt")[1].read_text())  # replaced: its own
    assert "added after the summary" not in before["doc1.txt"][1].decode()
    assert changed["source"]["sha256"] != json.loads(before["doc1.txt"][1])["source"]["sha256"]
    adopted = query(ledger, "SELECT COUNT(DISTINCT file_id) FROM sidecars WHERE detail = 'adopted'")
    assert adopted == [(4,)]  # doc0 (its JSON), doc2, doc3, doc4
    after = {row["model"]: row for row in costs(tmp_path / "state", "--config", config)}
    (first,) = first_costs
    assert after[first["model"]]["requests"] == 4 + 2  # four adopted, two new answers


def test_import_sidecars_rebuilds_the_costs_ledger_costs_shows(
    tmp_path: Path, server: FakeBatches, api_key: str
) -> None:
    """(SQLite only: a lost ledger is a removed state directory; its busy check is the
    writer lock file.)"""
    inbox = tmp_path / "inbox"
    (inbox / "sub").mkdir(parents=True)
    names = ["a.txt", "b.txt", "sub/c.txt", "copy-of-a.txt"]
    for i, name in enumerate(names):
        (inbox / name).write_text(document(0 if name == "copy-of-a.txt" else i))
    summarise(config_for(tmp_path, inbox, server), [Path(n).name for n in names])
    expected = costs(tmp_path / "state")
    assert expected and expected[0]["cost_usd"]
    edited = sidecars(inbox / "b.txt")[1]
    shutil.rmtree(tmp_path / "state")
    (inbox / "a.txt").unlink()  # a source gone since: its history is imported all the same

    out = docproc("ledger", "import-sidecars", inbox, state=tmp_path / "state")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("4 sidecar(s): 3 result(s) recorded"), out.stdout
    assert costs(tmp_path / "state") == expected  # a reused result costs once, as before
    by_batch = docproc("ledger", "batches", "--json", state=tmp_path / "state")
    assert {row["state"] for row in json.loads(by_batch.stdout)} == {"imported"}
    again = docproc("ledger", "import-sidecars", inbox, state=tmp_path / "state")
    assert "0 result(s) recorded" in again.stdout and "4 already in the ledger" in again.stdout

    with WriterLock.acquire(tmp_path / "state", "docproc run"):  # a daemon at work
        busy = docproc("ledger", "import-sidecars", inbox, state=tmp_path / "state")
    assert busy.returncode == 1 and "is in use by docproc run" in busy.stderr
    assert busy.stdout == ""  # refused before reading anything

    edited.write_text(edited.read_text().replace('"summary": "', '"summary": "Edited. ', 1))
    shutil.rmtree(tmp_path / "state")
    out = docproc("ledger", "import-sidecars", inbox, state=tmp_path / "state")
    assert "1 edited or not docproc's" in out.stdout
    assert docproc("ledger", "verify", state=tmp_path / "state").returncode == 0


# -- the digest itself, and the writer that trusts it ------------------------------


def test_the_digest_tells_untouched_sidecars_from_edited_ones(tmp_path: Path) -> None:
    from docproc.sidecars import render_json, render_markdown
    from tests.test_sidecars import _content

    js, md = render_json(_content()), render_markdown(_content())
    assert open_json(js) is not None and markdown_intact(md)
    assert is_own(js) and is_own(md)
    assert not is_own(js.replace(b"three things", b"four things"))
    assert not is_own(js.replace(b'\n  "schema"', b'\n    "schema"'))  # spacing is an edit too
    assert not is_own(md.replace(b"It ends well.", b"It ends badly."))
    assert not is_own(md + b"\nA line added.\n")
    assert not is_own(b"my own notes\n") and not is_own(b"{}")
    line = next(x for x in md.split(b"\n") if x.startswith(b"digest:"))
    moved = md.replace(line + b"\n", b"").replace(b"# Summary", line + b"\n# Summary")
    assert not is_own(moved)


def test_an_untouched_sidecar_unknown_to_the_ledger_is_replaced_an_edited_one_is_not(
    tmp_path: Path,
) -> None:
    from docproc.errors import SidecarConflict
    from docproc.sidecars import render_json
    from tests.test_sidecars import _content

    ours, theirs = tmp_path / "x.docproc.json", tmp_path / "y.docproc.json"
    ours.write_bytes(render_json(_content(summary="Old.")))
    theirs.write_bytes(render_json(_content(summary="Old.")).replace(b"Old.", b"Mine."))
    new = render_json(_content(summary="New."))
    write_atomic(ours, new, expected_existing=set())  # no record: the digest vouches for it
    assert ours.read_bytes() == new
    with pytest.raises(SidecarConflict):
        write_atomic(theirs, new, expected_existing=set())
    assert b"Mine." in theirs.read_bytes()


# -- S3: sidecar objects of a lost ledger ------------------------------------------


@pytest.mark.usefixtures("aws_env")
def test_a_new_state_directory_adopts_untouched_sidecar_objects_on_s3(
    tmp_path: Path, server: FakeBatches, api_key: str, moto: Moto
) -> None:
    """Moto's S3 behind the fault proxy: after the ledger is lost, docproc's own sidecar
    objects are adopted (nothing sent again, an edited one left alone); while one of
    them cannot be read (SlowDown), no job is made under the prefix."""
    s3 = moto.client()
    bucket = moto.bucket(s3)
    names = [f"doc{i}.txt" for i in range(3)]
    for i, name in enumerate(names):
        s3.put_object(Bucket=bucket, Key=f"docs/{name}", Body=document(i).encode())
    proxy = FaultProxy(moto.url)
    try:
        config = config_for(tmp_path, tmp_path / "unused", server, s3_watch=(bucket, proxy.url))
        summarise(config, names)
        assert sum(server.submitted_ids().values()) == 3
        edited = "docs/doc0.txt.summary.md"
        body = s3.get_object(Bucket=bucket, Key=edited)["Body"].read() + b"\nMy own note.\n"
        s3.put_object(Bucket=bucket, Key=edited, Body=body)
        before = {k: s3.get_object(Bucket=bucket, Key=f"docs/{k}.docproc.json")["ETag"]
                  for k in names}  # fmt: skip
        shutil.rmtree(tmp_path / "state")  # the ledger is lost

        unreadable = proxy.add(Fault(lambda method, path, _: method == "GET"
                                     and "doc1.txt.docproc.json" in path))  # fmt: skip
        daemon = DaemonProcess(config)
        try:
            daemon.until(lambda: daemon.states().get("doc0.txt") == "written"
                         and daemon.states().get("doc2.txt") == "written", 60)  # fmt: skip
            daemon.until(lambda: daemon.states().get("doc1.txt") == "extracted")
            tried = unreadable.times
            daemon.until(lambda: unreadable.times < tried - 1, 30)  # looked at again, later
            assert daemon.query("SELECT COUNT(*) FROM jobs j JOIN files f"
                                " ON f.version_id = j.version_id WHERE f.path LIKE '%doc1.txt'"
                                ) == [(0,)]  # fmt: skip
            proxy.clear()
            daemon.until(lambda: set(daemon.states().values()) == {"written"}, 60)
        finally:
            assert daemon.stop() == 0
    finally:
        proxy.close()
    assert sum(server.submitted_ids().values()) == 3  # nothing was sent again
    assert s3.get_object(Bucket=bucket, Key=edited)["Body"].read() == body  # left alone
    after = {k: s3.get_object(Bucket=bucket, Key=f"docs/{k}.docproc.json")["ETag"]
             for k in names}  # fmt: skip
    assert after == before  # adopted as they were, not rewritten
    ledger = tmp_path / "state" / "ledger.db"
    adopted = query(ledger, "SELECT uri FROM sidecars WHERE detail = 'adopted' ORDER BY uri")
    assert [Path(uri).name for (uri,) in adopted] == [
        "doc0.txt.docproc.json", "doc1.txt.docproc.json", "doc1.txt.summary.md",
        "doc2.txt.docproc.json", "doc2.txt.summary.md"]  # fmt: skip
    assert docproc("ledger", "verify", state=tmp_path / "state").returncode == 0


def test_unclaimed_versions_come_in_pages_each_with_all_its_files(
    ledger_location: LedgerLocation,
) -> None:
    """The adopter looks at every unclaimed version, page by page (not only the first
    page: the rest would otherwise get jobs, and be sent again, unlooked)."""
    from docproc.ledger.connection import open_ledger
    from docproc.ledger.imports import ImportLedger
    from docproc.models import Extraction
    from tests.parts import extractions, files

    with open_ledger(ledger_location) as ledger:
        root = files(ledger).ensure_root("file:///docs", kind="local", mode="events")
        for i in range(3):
            for copy in range(2):  # each version held by two files
                files(ledger).record_version(root, Path(f"/docs/{copy}/f{i}.txt"), size=1,
                                             mtime_ns=1, sha256=f"{i:064x}")  # fmt: skip
            extractions(ledger).record_extraction(
                Extraction(f"{i:064x}", "native:text", "t" * 64, 10)
            )
        imports = ImportLedger(ledger)
        pages, after = [], 0
        while page := imports.unclaimed([root], 1, after=after):
            pages.append([(v.version_id, len(v.files)) for v in page])
            after = page[-1].version_id
        assert pages == [[(1, 2)], [(2, 2)], [(3, 2)]]
        assert imports.unclaimed([], 10) == []
