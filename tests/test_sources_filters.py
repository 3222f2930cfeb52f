"""The ignore rules: built-ins, hidden entries, user globs and directory pruning."""

from __future__ import annotations

from pathlib import Path

import pytest

from docproc.models import WatchSpec
from docproc.sources.filters import IgnoreRules, compile_glob


@pytest.mark.parametrize(
    "rel",
    [
        "a.summary.md",
        "sub/a.pdf.docproc.json",
        "x.part",
        "x.PART",
        "dl.crdownload",
        "x.tmp",
        ".x.swp",
        "~$report.docx",
        ".~lock.report.odt#",
        ".DS_Store",
        "sub/._a.pdf",
        "Thumbs.db",
        "thumbs.db",
        "desktop.ini",
        ".hidden.pdf",
    ],
)
def test_builtin_files_are_never_taken(rel: str) -> None:
    assert not IgnoreRules().takes_file(rel)


@pytest.mark.parametrize(
    "rel", ["a.pdf", "sub/deep/b.docx", "report.partial.pdf", "~report.pdf", "lock.~lock.x#y"]
)
def test_ordinary_files_are_taken(rel: str) -> None:
    assert IgnoreRules().takes_file(rel)


@pytest.mark.parametrize(
    "name",
    [
        "@eaDir",
        ".stfolder",
        ".stversions",
        "__MACOSX",
        ".Spotlight-V100",
        ".Trashes",
        ".Trash-1000",
        "$RECYCLE.BIN",
        "lost+found",
        "@EADIR",
    ],
)
def test_junk_directories_are_pruned_even_when_hidden_is_on(name: str) -> None:
    rules = IgnoreRules(hidden=True)
    assert not rules.enters_dir(f"sub/{name}")
    assert not rules.takes_path(f"sub/{name}/a.pdf")


def test_hidden_entries_only_when_asked() -> None:
    assert not IgnoreRules().enters_dir(".git")
    assert not IgnoreRules().takes_path(".config/a.pdf")
    rules = IgnoreRules(hidden=True)
    assert rules.enters_dir(".config")
    assert rules.takes_path(".config/.a.pdf")
    assert not rules.takes_file(".DS_Store")
    assert not rules.takes_file(".~lock.a.odt#")


def test_sidecar_suffixes_come_from_the_spec() -> None:
    rules = IgnoreRules.from_spec(WatchSpec(Path("/w"), ignore_suffixes=(".out.txt",)))
    assert not rules.takes_file("a.out.txt")
    assert rules.takes_file("a.summary.md")


def test_user_globs_add_to_the_builtins() -> None:
    rules = IgnoreRules(include=("*.pdf", "*.part"), exclude=("draft-*",))
    assert rules.takes_file("a.pdf")
    assert not rules.takes_file("a.docx")  # not included
    assert not rules.takes_file("draft-1.pdf")  # excluded
    assert not rules.takes_file("x.part")  # built-in beats include


@pytest.mark.parametrize(
    ("glob", "rel", "matches"),
    [
        # No slash: matches the base name at any depth.
        ("*.pdf", "a.pdf", True),
        ("*.pdf", "x/y/a.pdf", True),
        ("a?.pdf", "x/ab.pdf", True),
        ("a?.pdf", "x/a/b.pdf", False),
        # With a slash: the root-relative path, in full.
        ("inv/*.pdf", "inv/a.pdf", True),
        ("inv/*.pdf", "inv/2024/a.pdf", False),
        ("inv/*.pdf", "x/inv/a.pdf", False),
        ("/a.pdf", "a.pdf", True),
        ("/a.pdf", "x/a.pdf", False),  # a leading slash anchors
        ("inv/", "x/inv", True),  # a trailing slash is ignored
        ("/inv/a.pdf", "inv/a.pdf", True),
        # ** as a whole segment: any number of segments, including none.
        ("inv/**/*.pdf", "inv/a.pdf", True),
        ("inv/**/*.pdf", "inv/2024/q1/a.pdf", True),
        ("inv/**/*.pdf", "other/a.pdf", False),
        ("inv/**", "inv", True),
        ("inv/**", "inv/a/b.pdf", True),
        ("inv/**", "invoice/a.pdf", False),
        ("**/tmp/*", "tmp/a", True),
        ("**/tmp/*", "a/b/tmp/c", True),
        ("**/tmp/*", "a/b/tmp/c/d", False),
        ("a/**/**/b", "a/b", True),
        ("**", "anything/at/all", True),
        ("a**b", "axxb", True),
        ("a**b", "ax/xb", False),
        # Character classes never match a slash.
        ("[ab].pdf", "b.pdf", True),
        ("[!ab].pdf", "c.pdf", True),
        ("[!ab].pdf", "a.pdf", False),
        ("x[+-0]y", "x/y", False),
        ("x[+-0]y", "x-y", True),
        ("[]].pdf", "].pdf", True),
        ("a[.pdf", "a[.pdf", True),
        # Case-sensitive, and regex metacharacters are literal.
        ("*.PDF", "a.pdf", False),
        ("a+(1).pdf", "a+(1).pdf", True),
    ],
)
def test_glob_rule(glob: str, rel: str, matches: bool) -> None:
    rules = IgnoreRules(include=(glob,), hidden=True)
    assert rules.takes_file(rel) is matches


def test_exclude_prunes_directories_but_include_never_does() -> None:
    rules = IgnoreRules(include=("*.pdf",), exclude=("archive", "old/**"))
    assert rules.enters_dir("docs")  # include globs never prune
    assert not rules.enters_dir("x/archive")
    assert not rules.enters_dir("old")
    assert not rules.takes_path("x/archive/a.pdf")
    assert not rules.takes_path("old/2020/a.pdf")
    assert rules.takes_path("x/old/a.pdf")  # "old/**" is anchored at the root


def test_takes_path_checks_every_ancestor() -> None:
    rules = IgnoreRules()
    assert rules.takes_path("a/b/c.pdf")
    assert not rules.takes_path("a/@eaDir/b/c.pdf")
    assert not rules.takes_path("a/.cache/c.pdf")


def test_compiled_glob_matches_newlines_in_names() -> None:
    assert compile_glob("*.pdf").match("a\nb.pdf")
