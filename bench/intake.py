"""Intake benchmark: docproc, kreuzberg and unstructured side by side, in one run.

Usage::

    .venv/bin/python bench/intake.py [--files N] [--ocr-pages N] [--tree-files N] [--out DIR]

What it measures (all on this machine, in one run, so the ratios compare):

1. a generated corpus of ``--files`` documents (2,000) in 13 formats (txt, md,
   html, csv, json, xml, eml, docx, pptx, xlsx, pdf, odt, rtf), each holding
   known *probe sentences*;
2. for each engine, 2 processes (see bench/engines.py; kreuzberg runs in its
   own venv, cache off): wall time including start-up, files/s, MB/s, peak RSS
   and CPU; probe sentences found (whitespace-normalised), per format; for
   docproc, every file must be extracted in the ledger;
3. the ratio docproc/kreuzberg of files/s (target >= 0.5): the median over
   ``--rounds`` kreuzberg-then-docproc pairs, since one pair on a shared
   machine can land on a busy moment for either;
4. OCR: ``--ocr-pages`` scanned pages (text rendered to PNG, JPEG, TIFF and
   image-only PDF pages) through docproc and kreuzberg: pages/s, the share
   of scanned words read, and peak RSS;
5. a re-scan of an unchanged tree of tiny .txt files (``--tree-files``, 0 to
   skip): first scan, re-scan, and whether the ledger's event count moved.

Figures are printed as plain text and written to ``<out>/intake.json``.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import engines  # this folder is on sys.path when run as a script

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MB = 1024 * 1024
WORD = re.compile(r"[a-z]+")


def say(line: str) -> None:
    print(line, flush=True)


def rate(count: float, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def normalised(text: str) -> str:
    return " ".join(text.split())


# -- corpus and probes --------------------------------------------------------------------


def make_corpus(folder: Path, n: int) -> dict[Path, list[str]]:
    from tests.docgen import BENCH_KINDS, make_mixed_corpus

    folder.mkdir(parents=True)
    return make_mixed_corpus(folder, n, kinds=BENCH_KINDS)


def probe_recall(probes: dict[Path, list[str]], texts: dict[Path, str]) -> dict[str, list[int]]:
    """Per format: [probe sentences found, probe sentences in all]."""
    found: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    for path, sentences in probes.items():
        text = normalised(texts.get(path, ""))
        counts = found[path.suffix[1:]]
        counts[0] += sum(1 for s in sentences if normalised(s) in text)
        counts[1] += len(sentences)
    return dict(found)


def recall_line(recall: dict[str, list[int]]) -> str:
    total = [sum(v[0] for v in recall.values()), sum(v[1] for v in recall.values())]
    parts = [f"{k} {v[0] / v[1]:.0%}" for k, v in sorted(recall.items()) if v[0] < v[1]]
    worst = f" (below 100%: {', '.join(parts)})" if parts else ""
    return f"{total[0] / max(total[1], 1):.1%} of {total[1]} probe sentences{worst}"


def report(run: engines.EngineRun, files: int, mb: float, recall: dict[str, list[int]]) -> str:
    fps, mbps = rate(files, run.seconds), rate(mb, run.seconds)
    return (
        f"{run.name:<13} {run.seconds:6.2f} s  {fps:7.0f} files/s  {mbps:6.2f} MB/s"
        f"  RSS main {run.main_rss_mb:4.0f} MB, workers {run.workers_rss_mb:4.0f} MB"
        f"  CPU {run.cpu_s:5.1f} s  probes {recall_line(recall)}"
    )


# -- part 1-3: the 13-format corpus ------------------------------------------------------------


def bench_corpus(work: Path, args: argparse.Namespace, summary: dict[str, Any]) -> None:
    probes = make_corpus(work / "corpus", args.files)
    files = sorted(probes)
    mb = sum(p.stat().st_size for p in files) / MB
    kinds = collections.Counter(p.suffix[1:] for p in files)
    per_kind = ", ".join(f"{k} {n}" for k, n in kinds.items())
    say(f"corpus: {len(files)} files, {mb:.1f} MB ({per_kind})")
    runs: dict[str, engines.EngineRun] = {}
    kz = engines.kreuzberg(files, work, "corpus")
    if isinstance(kz, str):
        say(f"kreuzberg: not measured: {kz}")
    else:
        runs["kreuzberg"] = kz
    runs["docproc"] = engines.docproc(
        work / "corpus", work / "state-corpus", work / "scan.log", files
    )
    if not args.skip_unstructured:
        runs["unstructured"] = engines.unstructured(files)
    summary["corpus"] = {"files": len(files), "mb": mb, "per_kind": dict(kinds), "engines": {}}
    for name, run in runs.items():
        recall = probe_recall(probes, run.texts)
        say(report(run, len(files), mb, recall))
        summary["corpus"]["engines"][name] = {
            **{k: v for k, v in asdict(run).items() if k not in ("texts", "errors")},
            "files_per_s": rate(len(files), run.seconds),
            "mb_per_s": rate(mb, run.seconds),
            "recall_per_kind": recall,
            "failed": len(run.errors),
            "errors_sample": sorted({e[:120] for e in run.errors.values()})[:5],
        }
    dp = runs["docproc"]
    if dp.errors or dp.returncode:
        say(f"  docproc: {len(dp.errors)} files not extracted (exit {dp.returncode}); e.g. "
            + "; ".join(f"{p.name}: {e}" for p, e in list(dp.errors.items())[:5]))  # fmt: skip
    if "kreuzberg" in runs:
        ratios = [runs["kreuzberg"].seconds / dp.seconds]
        for round_ in range(2, args.rounds + 1):
            ratios.append(ratio_round(work, files, round_))
        median = statistics.median(ratios)
        say(
            f"ratio docproc/kreuzberg files/s: {median:.2f} (median of {len(ratios)} rounds: "
            f"{', '.join(f'{r:.2f}' for r in ratios)}; target >= 0.5)"
        )
        summary["corpus"]["ratio_docproc_kreuzberg"] = median
        summary["corpus"]["ratio_rounds"] = ratios


def ratio_round(work: Path, files: list[Path], round_: int) -> float:
    """One more kreuzberg-then-docproc pair on the same corpus (a fresh ledger)."""
    kz = engines.kreuzberg(files, work, f"corpus{round_}")
    state = work / f"state-corpus{round_}"
    dp = engines.docproc(work / "corpus", state, work / f"scan{round_}.log", files)
    if isinstance(kz, str) or dp.errors:
        return float("nan")
    say(f"  round {round_}: kreuzberg {kz.seconds:.2f} s, docproc {dp.seconds:.2f} s")
    return kz.seconds / dp.seconds


# -- part 4: OCR ----------------------------------------------------------------------------


def make_scans(folder: Path, pages: int) -> dict[Path, list[str]]:
    """Scanned pages: PNG, JPEG, TIFF and image-only PDF pages, each with known words."""
    from tests import docformats
    from tests.docgen import sentences

    folder.mkdir(parents=True)
    made: dict[Path, list[str]] = {}
    kinds = ("png", "jpg", "tiff", "pdf")
    for index in range(pages):
        kind = kinds[index % len(kinds)]
        lines = [re.sub(r"\d", "", s) for s in sentences(f"scan{index}x", 3)]
        path = folder / f"scan{index:04d}.{kind}"
        if kind == "pdf":
            docformats.write_mixed_pdf(path, [], lines)
        else:
            docformats.write_scan(path, lines)
        made[path] = lines
    return made


def word_share(wanted: dict[Path, list[str]], texts: dict[Path, str]) -> float:
    total = found = 0
    for path, lines in wanted.items():
        words = WORD.findall(" ".join(lines).lower())
        have = set(WORD.findall(texts.get(path, "").lower()))
        total += len(words)
        found += sum(1 for w in words if w in have)
    return found / max(total, 1)


def bench_ocr(work: Path, pages: int, summary: dict[str, Any]) -> None:
    scans = make_scans(work / "scans", pages)
    files = sorted(scans)
    say(f"OCR: {len(files)} scanned pages (png, jpg, tiff, image-only pdf)")
    summary["ocr"] = {"pages": len(files)}
    runs: list[engines.EngineRun] = []
    kz = engines.kreuzberg(files, work, "ocr")
    if isinstance(kz, str):
        say(f"  kreuzberg: not measured: {kz}")
    else:
        runs.append(kz)
    runs.append(engines.docproc(work / "scans", work / "state-ocr", work / "ocr.log", files))
    for run in runs:
        share = word_share(scans, run.texts)
        pages_read = run.extra.get("ocr_pages", len(run.texts))
        say(
            f"  {run.name:<11} {run.seconds:6.2f} s  {rate(len(files), run.seconds):5.2f} pages/s"
            f"  words read {share:.1%}  RSS main {run.main_rss_mb:.0f} MB, workers"
            f" {run.workers_rss_mb:.0f} MB  ({len(run.errors)} failed"
            + (f"; OCR'd pages in the ledger: {pages_read}" if run.name == "docproc" else "")
            + ")"
        )
        summary["ocr"][run.name] = {
            "seconds": run.seconds,
            "pages_per_s": rate(len(files), run.seconds),
            "words_read": share,
            "main_rss_mb": run.main_rss_mb,
            "workers_rss_mb": run.workers_rss_mb,
            "failed": len(run.errors),
        }


# -- part 5: rescan ---------------------------------------------------------------------------


def make_tree(folder: Path, n: int, per_folder: int = 1000) -> int:
    """``n`` tiny, distinct .txt files in sub-folders of ``per_folder``; returns bytes written."""
    total = 0
    for i in range(n):
        sub = folder / f"d{i // per_folder:04d}"
        if i % per_folder == 0:
            sub.mkdir(parents=True)
        data = f"Tiny file {i} of the rescan tree, folder {i // per_folder}.\n".encode()
        (sub / f"f{i:06d}.txt").write_bytes(data)
        total += len(data)
    return total


def event_count(state: Path) -> int:
    with sqlite3.connect(f"file:{state / 'ledger.db'}?mode=ro", uri=True) as conn:
        return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])


def bench_rescan(work: Path, n: int, summary: dict[str, Any]) -> None:
    tree, state = work / "tree", work / "state-tree"
    make_tree(tree, n)
    first = engines.docproc(tree, state, work / "scan-tree-1.log", [])
    before = event_count(state)
    second = engines.docproc(tree, state, work / "scan-tree-2.log", [])
    after = event_count(state)
    unchanged = "yes" if after == before else f"NO ({before} -> {after})"
    say(
        f"rescan of {n} unchanged files: first scan {first.seconds:.1f} s "
        f"({rate(n, first.seconds):.0f} files/s), rescan {second.seconds:.2f} s, "
        f"events unchanged: {unchanged}; target <= 5 s for 100000; "
        f"peak RSS main {first.main_rss_mb:.0f} MB (first), {second.main_rss_mb:.0f} MB (rescan)"
    )
    for label, run in (("first", first), ("rescan", second)):
        if run.returncode != 0:
            say(f"  {label} scan exited {run.returncode}:\n{run.output}")
    summary["rescan"] = {
        "files": n,
        "first_seconds": first.seconds,
        "rescan_seconds": second.seconds,
        "events_before": before,
        "events_after": after,
        "target_seconds": 5.0,
    }


# -- the run -------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=2000, help="13-format corpus size (2000)")
    parser.add_argument("--ocr-pages", type=int, default=40, help="scanned pages, 0 to skip (40)")
    parser.add_argument(
        "--tree-files", type=int, default=100_000, help="rescan tree size, 0 to skip (100000)"
    )
    parser.add_argument("--skip-unstructured", action="store_true", help="leave unstructured out")
    parser.add_argument(
        "--rounds", type=int, default=3, help="kreuzberg/docproc pairs for the ratio's median (3)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out", help="JSON summary")
    parser.add_argument("--keep", action="store_true", help="keep the temporary corpus and state")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="docproc-bench-"))
    summary: dict[str, Any] = {"python": sys.version.split()[0], "cpus": os.cpu_count()}
    summary["load_average_at_start"] = os.getloadavg()
    started = time.perf_counter()
    try:
        if args.files > 0:
            bench_corpus(work, args, summary)
        if args.ocr_pages > 0:
            bench_ocr(work, args.ocr_pages, summary)
        if args.tree_files > 0:
            bench_rescan(work, args.tree_files, summary)
    finally:
        if args.keep:
            say(f"kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    summary["seconds"] = time.perf_counter() - started
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / "intake.json"
    target.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    say(f"load average at start {summary['load_average_at_start'][0]:.1f}; summary: {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
