"""Sidecars: rendering, path planning and its safety, atomic no-clobber writes."""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from docproc.errors import SidecarConflict, SidecarError
from docproc.models import Highlight, Usage
from docproc.sidecars import (
    SCHEMA,
    SidecarContent,
    plan_paths,
    remove_sidecars,
    remove_stale_temps,
    render_json,
    render_markdown,
    temp_name,
    write_atomic,
)
from docproc.sidecars import write as sidecar_writes
from docproc.sources.filters import IgnoreRules

SHA = "0123456789abcdef" * 4


def _content(**changes: object) -> SidecarContent:
    base = SidecarContent(
        source="/data/inbox/Rapport été.pdf",
        sha256=SHA,
        summary="The report covers three things.\nIt ends well.",
        highlights=(
            Highlight("Revenue grew by 12%.", why="the headline figure", start=40, end=60),
            Highlight("Costs fell.", start=100, end=111),
            Highlight("Not located anywhere."),
        ),
        provider="local",
        model="local-extractive-1",
        batch_id="local-batch-7",
        custom_id="j12-a1",
        usage=Usage(input_tokens=1200, output_tokens=80),
        cost_usd=0.0,
        file_id=1,
        version_id=2,
        job_id=3,
        written_at="2025-01-31T12:00:00Z",
        dropped_highlights=1,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def _front_matter(md: str) -> dict[str, object]:
    lines = md.split("\n")
    assert lines[0] == "---"
    end = lines.index("---", 1)
    fields: dict[str, object] = {}
    for line in lines[1:end]:
        key, sep, value = line.partition(": ")
        assert sep, line
        fields[key] = json.loads(value)  # JSON strings are YAML double-quoted scalars
    return fields


def _listing(directory: Path) -> list[str]:
    return sorted(os.listdir(directory))


# -- rendering ------------------------------------------------------------------


def test_json_has_the_documented_schema_in_order() -> None:
    raw = render_json(_content())
    assert raw.endswith(b"}\n")
    doc = json.loads(raw.decode("utf-8"))
    assert list(doc) == [
        "schema",
        "source",
        "summary",
        "highlights",
        "dropped_highlights",
        "reused",
        "provider",
        "task",
        "usage",
        "cost_usd",
        "ledger",
        "generated_at",
        "generator",
        "digest",
    ]
    assert doc["schema"] == SCHEMA == "docproc.sidecar/1"
    assert doc["source"] == {"path": "/data/inbox/Rapport été.pdf", "sha256": SHA}
    assert doc["highlights"][0] == {
        "quote": "Revenue grew by 12%.",
        "why": "the headline figure",
        "start": 40,
        "end": 60,
    }
    assert doc["highlights"][2] == {
        "quote": "Not located anywhere.",
        "why": "",
        "start": None,
        "end": None,
    }
    assert doc["provider"] == {
        "name": "local",
        "model": "local-extractive-1",
        "batch_id": "local-batch-7",
        "custom_id": "j12-a1",
    }
    assert doc["usage"] == {
        "input_tokens": 1200,
        "output_tokens": 80,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }
    assert doc["ledger"] == {"file_id": 1, "version_id": 2, "job_id": 3}
    assert doc["cost_usd"] == 0.0
    assert doc["dropped_highlights"] == 1
    assert doc["reused"] is False
    assert doc["generated_at"] == "2025-01-31T12:00:00Z"
    assert doc["generator"].startswith("docproc ")
    assert "été".encode() in raw  # UTF-8, not \u escapes


def test_json_unknowns_are_null() -> None:
    doc = json.loads(render_json(_content(cost_usd=None, file_id=None, reused=True)))
    assert doc["cost_usd"] is None
    assert doc["ledger"]["file_id"] is None
    assert doc["reused"] is True


def test_markdown_front_matter_title_summary_and_highlights() -> None:
    md = render_markdown(_content()).decode("utf-8")
    fields = _front_matter(md)
    assert fields == {
        "source": "/data/inbox/Rapport été.pdf",
        "sha256": SHA,
        "provider": "local",
        "model": "local-extractive-1",
        "batch": "local-batch-7",
        "custom_id": "j12-a1",
        "generated_at": "2025-01-31T12:00:00Z",
        "generator": fields["generator"],
        "reused": False,
        "task": "",
        "digest": fields["digest"],
    }
    assert str(fields["generator"]).startswith("docproc ")
    assert str(fields["digest"]).startswith("sha256:")
    body = md.split("\n---\n", 1)[1]
    assert "\n# Summary of Rapport été.pdf\n" in body
    assert "The report covers three things.\nIt ends well." in body
    assert "\n## Highlights\n" in body
    assert "- > Revenue grew by 12%.\n\n  chars 40\u201360 · the headline figure" in body
    assert "- > Costs fell.\n\n  chars 100\u2013111" in body
    assert "- > Not located anywhere." in body
    assert "1 highlight was left out" in body
    assert md.endswith("\n") and not md.endswith("\n\n")


def test_rendering_is_deterministic() -> None:
    first = _content()
    again = _content()  # a fresh but equal value, as after a crash and a restart
    assert render_json(first) == render_json(again)
    assert render_markdown(first) == render_markdown(again)
    assert render_json(first) != render_json(_content(written_at="2025-02-01T00:00:00Z"))


def test_markdown_document_text_cannot_open_structure() -> None:
    hostile = "# Heading\n---\n1. item\n- item\n> quote\n    code\n<script>alert(1)</script> [x](http://e)"
    md = render_markdown(
        _content(summary=hostile, highlights=(Highlight("## quoted\n---"),))
    ).decode()
    body = md.split("\n---\n", 1)[1]
    headings = [line for line in body.split("\n") if line.startswith("#")]
    assert headings == ["# Summary of Rapport été.pdf", "## Highlights"]
    lines = body.split("\n")
    assert "\\# Heading" in lines
    assert "\\---" in lines
    assert "1\\. item" in lines
    assert "\\- item" in lines
    assert "\\> quote" in lines
    assert "code" in lines  # no indented code block
    assert re.search(r"(?<!\\)<", body) is None and "\\<script>" in body
    assert "\\[x](http://e)" in body
    assert "- > \\## quoted\n  > \\---" in body


def test_front_matter_survives_hostile_and_undecodable_paths() -> None:
    source = '/in/a "quoted": name\nwith newline\u2028and\x7f\udcff.pdf'
    content = _content(source=source, batch_id="b: --- #")
    md = render_markdown(content).decode("utf-8")  # lone surrogates do not break UTF-8
    fields = _front_matter(md)
    assert fields["source"] == '/in/a "quoted": name\nwith newline\u2028and\x7f\ufffd.pdf'
    assert fields["batch"] == "b: --- #"
    front = md.split("\n---\n", 1)[0]
    assert "\u2028" not in front and "\x7f" not in front
    doc = json.loads(render_json(content).decode("utf-8"))
    assert doc["source"]["path"].endswith("\ufffd.pdf")


# -- planning -------------------------------------------------------------------


def test_plan_next_to_the_source(tmp_path: Path) -> None:
    source = tmp_path / "sub" / "x.pdf"
    paths = plan_paths(source, tmp_path)
    assert paths == (tmp_path / "sub/x.pdf.summary.md", tmp_path / "sub/x.pdf.docproc.json")
    assert paths.markdown.name == "x.pdf.summary.md"
    assert plan_paths(Path("sub/x.pdf"), tmp_path) == paths  # relative to the root
    custom = plan_paths(source, tmp_path, summary_suffix=".sum.md", json_suffix=".meta.json")
    assert custom.json == tmp_path / "sub/x.pdf.meta.json"


def test_plan_mirrors_under_output_dir_and_write_creates_parents(tmp_path: Path) -> None:
    root, out = tmp_path / "ro", tmp_path / "out"
    (root / "a" / "b").mkdir(parents=True)
    paths = plan_paths(root / "a/b/x.pdf", root, output_dir=out)
    assert paths.markdown == out / "a/b/x.pdf.summary.md"
    write_atomic(paths.json, b"{}\n", expected_existing=set(), within=out, make_parents=True)
    assert paths.json.read_bytes() == b"{}\n"
    assert _listing(root / "a/b") == []


@pytest.mark.parametrize("source", ["../x.pdf", "sub/../../x.pdf", "sub/../x.pdf"])
def test_plan_refuses_dotdot(tmp_path: Path, source: str) -> None:
    with pytest.raises(SidecarError, match=r"'\.\.'"):
        plan_paths(Path(source), tmp_path)
    with pytest.raises(SidecarError, match=r"'\.\.'"):
        plan_paths(tmp_path / source, tmp_path)


def test_plan_refuses_a_source_outside_the_root(tmp_path: Path) -> None:
    with pytest.raises(SidecarError, match="outside its root"):
        plan_paths(Path("/etc/passwd"), tmp_path / "root")
    with pytest.raises(SidecarError, match="root itself"):
        plan_paths(tmp_path, tmp_path)


def test_plan_refuses_a_directory_symlink_out_of_the_root(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "escape").symlink_to(outside)
    with pytest.raises(SidecarError, match="refusing to write outside"):
        plan_paths(root / "escape" / "x.pdf", root)
    # the mirror base is guarded the same way
    out = tmp_path / "out"
    out.mkdir()
    (out / "sub").symlink_to(outside)
    with pytest.raises(SidecarError, match="refusing to write outside"):
        plan_paths(root / "sub" / "x.pdf", root, output_dir=out)
    assert _listing(outside) == []


def test_plan_allows_a_directory_symlink_inside_the_root(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    paths = plan_paths(tmp_path / "alias" / "x.pdf", tmp_path)
    assert paths.markdown == tmp_path / "alias" / "x.pdf.summary.md"


def test_write_rechecks_the_directory_it_opens(tmp_path: Path) -> None:
    """A directory swapped for a symlink after planning is still refused."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    paths = plan_paths(root / "sub" / "x.pdf", root)
    (root / "sub").rmdir()
    (root / "sub").symlink_to(outside)
    with pytest.raises(SidecarError, match="refusing to write outside"):
        write_atomic(paths.markdown, b"x", expected_existing=set(), within=root)
    assert _listing(outside) == []


def test_plan_refuses_names_too_long_for_the_filesystem(tmp_path: Path) -> None:
    fits = "a" * 250  # a valid source name; + ".summary.md" is 261 bytes
    with pytest.raises(SidecarError, match="sidecar name too long for the filesystem"):
        plan_paths(tmp_path / fits, tmp_path)
    multibyte = "é" * 125  # 250 bytes in 125 characters: bytes are what count
    with pytest.raises(SidecarError, match="too long"):
        plan_paths(tmp_path / multibyte, tmp_path)
    deep = Path(*(["d" * 200] * 21)) / "x.pdf"
    with pytest.raises(SidecarError, match="path too long"):
        plan_paths(deep, tmp_path)


def test_write_turns_enametoolong_into_a_sidecar_error(tmp_path: Path) -> None:
    with pytest.raises(SidecarError, match="too long"):
        write_atomic(tmp_path / ("n" * 300), b"x", expected_existing=set())


@pytest.mark.parametrize(
    ("summary", "json_suffix"), [("", ".j"), ("/x.md", ".j"), (".a", ".a"), (".a\0", ".j")]
)
def test_plan_refuses_bad_suffixes(tmp_path: Path, summary: str, json_suffix: str) -> None:
    with pytest.raises(SidecarError, match="suffix"):
        plan_paths(tmp_path / "x.pdf", tmp_path, summary_suffix=summary, json_suffix=json_suffix)


# -- writing --------------------------------------------------------------------


def test_write_is_atomic_and_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "x.pdf.summary.md"
    old = os.umask(0o022)
    try:
        digest = write_atomic(target, b"hello\n", expected_existing=set(), within=tmp_path)
    finally:
        os.umask(old)
    assert digest == hashlib.sha256(b"hello\n").hexdigest()
    assert target.read_bytes() == b"hello\n"
    assert _listing(tmp_path) == ["x.pdf.summary.md"]
    assert target.stat().st_mode & 0o777 == 0o644
    assert target.stat().st_nlink == 1  # the temp link is gone


def test_same_bytes_is_a_no_op(tmp_path: Path) -> None:
    target = tmp_path / "x.pdf.docproc.json"
    digest = write_atomic(target, b"{}\n", expected_existing=set())
    before = target.stat()
    # even with no expected hashes: identical bytes are docproc's own rewrite
    assert write_atomic(target, b"{}\n", expected_existing=set()) == digest
    after = target.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_a_users_file_is_never_overwritten(tmp_path: Path) -> None:
    target = tmp_path / "x.pdf.summary.md"
    target.write_bytes(b"my own notes")
    with pytest.raises(SidecarConflict) as caught:
        write_atomic(target, b"docproc", expected_existing={"f" * 64})
    assert target.read_bytes() == b"my own notes"
    assert caught.value.path == str(target)
    assert caught.value.found_sha256 == hashlib.sha256(b"my own notes").hexdigest()
    assert isinstance(caught.value, SidecarError)
    assert _listing(tmp_path) == ["x.pdf.summary.md"]


def test_docproc_replaces_what_it_wrote(tmp_path: Path) -> None:
    target = tmp_path / "x.pdf.summary.md"
    first = write_atomic(target, b"version 1", expected_existing=set())
    second = write_atomic(target, b"version 2", expected_existing={first})
    assert target.read_bytes() == b"version 2"
    assert second == hashlib.sha256(b"version 2").hexdigest()
    assert _listing(tmp_path) == ["x.pdf.summary.md"]


def test_a_symlink_at_the_target_is_refused(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    target = tmp_path / "x.pdf.summary.md"
    target.symlink_to(victim)
    digest = hashlib.sha256(b"precious").hexdigest()
    with pytest.raises(SidecarConflict, match="symbolic link"):
        write_atomic(target, b"docproc", expected_existing={digest})
    assert target.is_symlink() and victim.read_bytes() == b"precious"
    target.unlink()
    target.symlink_to(tmp_path / "missing")  # a dangling link too
    with pytest.raises(SidecarConflict, match="symbolic link"):
        write_atomic(target, b"docproc", expected_existing=set())
    assert not (tmp_path / "missing").exists()


def test_a_directory_or_fifo_at_the_target_is_refused(tmp_path: Path) -> None:
    (tmp_path / "d.summary.md").mkdir()
    with pytest.raises(SidecarConflict, match="other than a regular file"):
        write_atomic(tmp_path / "d.summary.md", b"x", expected_existing=set())
    os.mkfifo(tmp_path / "f.summary.md")
    with pytest.raises(SidecarConflict, match="other than a regular file"):
        write_atomic(tmp_path / "f.summary.md", b"x", expected_existing=set())


def test_a_file_created_during_the_write_is_not_clobbered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "x.pdf.summary.md"
    real_link_new = sidecar_writes._link_new

    def user_wins_the_race(dir_fd: int, tmp: str, name: str) -> bool:
        if not target.exists():
            target.write_bytes(b"user was faster")
        return real_link_new(dir_fd, tmp, name)

    monkeypatch.setattr(sidecar_writes, "_link_new", user_wins_the_race)
    with pytest.raises(SidecarConflict):
        write_atomic(target, b"docproc", expected_existing=set())
    assert target.read_bytes() == b"user was faster"
    assert _listing(tmp_path) == ["x.pdf.summary.md"]


def test_without_hard_links_it_falls_back_to_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    target = tmp_path / "x.pdf.summary.md"
    write_atomic(target, b"docproc", expected_existing=set())
    assert target.read_bytes() == b"docproc"
    assert _listing(tmp_path) == ["x.pdf.summary.md"]


def test_a_failed_write_cleans_up_and_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "x.pdf.summary.md"
    old = write_atomic(target, b"old", expected_existing=set())

    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        write_atomic(target, b"new" * 1000, expected_existing={old})
    assert target.read_bytes() == b"old"
    assert _listing(tmp_path) == ["x.pdf.summary.md"]


def test_a_leftover_temp_file_never_becomes_the_target(tmp_path: Path) -> None:
    target = tmp_path / "x.pdf.summary.md"
    stale = tmp_path / ".x.pdf.summary.md.0badc0de.tmp"
    stale.write_bytes(b"half a sidecar")
    unrelated = tmp_path / ".x.pdf.summary.md.notmine.tmp"
    unrelated.write_bytes(b"someone else's")
    write_atomic(target, b"complete", expected_existing=set())
    assert target.read_bytes() == b"complete"
    assert stale.read_bytes() == b"half a sidecar"
    assert remove_stale_temps(target) == 1
    assert _listing(tmp_path) == [unrelated.name, target.name]


def test_a_reader_never_sees_a_partial_sidecar(tmp_path: Path) -> None:
    target = tmp_path / "big.pdf.docproc.json"
    payloads = [bytes([65 + i]) * (4 * 1024 * 1024) for i in range(2)]
    digests = {hashlib.sha256(p).hexdigest() for p in payloads}
    write_atomic(target, payloads[0], expected_existing=digests)
    stop = threading.Event()
    seen: list[int] = []
    torn: list[int] = []

    def reader() -> None:
        while not stop.is_set():
            data = target.read_bytes()
            seen.append(len(data))
            if data not in payloads:
                torn.append(len(data))

    thread = threading.Thread(target=reader, name="sidecar-reader")
    thread.start()
    try:
        deadline = time.monotonic() + 1.5
        i = 0
        while time.monotonic() < deadline and i < 200:
            i += 1
            write_atomic(target, payloads[i % 2], expected_existing=digests)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert seen and not torn
    assert _listing(tmp_path) == [target.name]


_CHILD = """
import sys
from pathlib import Path
from docproc.sidecars import write_atomic
import hashlib
target = Path(sys.argv[1])
payloads = [bytes([65 + i]) * (2 * 1024 * 1024) for i in range(2)]
digests = {hashlib.sha256(p).hexdigest() for p in payloads}
print("ready", flush=True)
i = 0
while True:
    i += 1
    write_atomic(target, payloads[i % 2], expected_existing=digests)
"""


def test_kill_9_during_writes_leaves_a_whole_sidecar(tmp_path: Path) -> None:
    target = tmp_path / "x.pdf.docproc.json"
    payloads = [bytes([65 + i]) * (2 * 1024 * 1024) for i in range(2)]
    rng = random.Random(7)
    for _ in range(6):
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(target)],
            stdout=subprocess.PIPE,
            cwd=Path(__file__).resolve().parent.parent,
        )
        assert child.stdout is not None
        assert child.stdout.readline() == b"ready\n"
        time.sleep(rng.uniform(0.02, 0.25))
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        child.stdout.close()
        if target.exists():
            assert target.read_bytes() in payloads
        remove_stale_temps(target)
        assert set(_listing(tmp_path)) <= {target.name}


def test_non_utf8_names_work(tmp_path: Path) -> None:
    root = os.fsencode(tmp_path)
    source = os.fsdecode(root + b"/caf\xe9 \xff.txt")
    paths = plan_paths(Path(source), tmp_path)
    content = _content(source=source)
    write_atomic(paths.markdown, render_markdown(content), expected_existing=set())
    write_atomic(paths.json, render_json(content), expected_existing=set())
    names = sorted(os.listdir(root))
    assert names == [b"caf\xe9 \xff.txt.docproc.json", b"caf\xe9 \xff.txt.summary.md"]
    doc = json.loads(Path(paths.json).read_bytes())
    assert doc["source"]["path"].endswith("caf\ufffd \ufffd.txt")


def test_temp_names_are_skipped_by_the_ignore_rules() -> None:
    for name in ("x.pdf.summary.md", "x.pdf.docproc.json", "Été.pdf.summary.md"):
        tmp = temp_name(name)
        assert tmp.startswith(".") and tmp.endswith(".tmp")
        assert not IgnoreRules().takes_file(tmp)
        assert not IgnoreRules(hidden=True).takes_file(tmp)  # *.tmp even when hidden is on
        assert not IgnoreRules().takes_path("sub/dir/" + tmp)
    assert temp_name("x") != temp_name("x")


def test_temp_names_of_long_names_fit_the_filesystem(tmp_path: Path) -> None:
    for name in ("a" * 255, "é" * 127, os.fsdecode(b"\xff" * 250 + b".md")):
        tmp = temp_name(name)
        assert len(os.fsencode(tmp)) <= 255
        assert not IgnoreRules(hidden=True).takes_file(tmp)
    target = tmp_path / ("é" * 120 + ".md")  # 243 bytes: fits; its temp name is cut
    write_atomic(target, b"ok", expected_existing=set())
    assert target.read_bytes() == b"ok"
    assert _listing(tmp_path) == [target.name]


# -- removing -------------------------------------------------------------------


def test_remove_sidecars_only_removes_what_docproc_wrote(tmp_path: Path) -> None:
    ours, edited, absent = (tmp_path / n for n in ("a.summary.md", "b.summary.md", "c.md"))
    link = tmp_path / "d.summary.md"
    written = {
        write_atomic(ours, b"ours", expected_existing=set()),
        write_atomic(edited, b"ours too", expected_existing=set()),
    }
    edited.write_bytes(b"ours too, and my notes")
    link.symlink_to(ours)
    result = remove_sidecars([ours, edited, absent, link], written, within=tmp_path)
    assert result.removed == [ours]
    assert result.kept == [edited, link]
    assert _listing(tmp_path) == ["b.summary.md", "d.summary.md"]


def test_staged_batch_commits_with_the_same_guarantees(tmp_path: Path) -> None:
    from docproc.errors import SidecarConflict as Conflict
    from docproc.sidecars import commit, stage

    ours, theirs, same = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json"
    same.write_bytes(b"unchanged")
    a = stage(ours, b"new a", expected_existing=set(), within=tmp_path)
    b = stage(theirs, b"new b", expected_existing=set(), within=tmp_path)
    assert stage(same, b"unchanged", expected_existing=set(), within=tmp_path) is None
    assert a is not None and b is not None
    assert not ours.exists()  # nothing is in place before commit
    theirs.write_text("a person's file, created meanwhile")
    outcomes = commit([a, b])
    assert outcomes[0] is None
    assert isinstance(outcomes[1], Conflict)
    assert ours.read_bytes() == b"new a"
    assert theirs.read_text() == "a person's file, created meanwhile"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.json", "c.json"]
