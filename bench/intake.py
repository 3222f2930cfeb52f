"""Intake benchmark: ``docproc scan`` against unstructured's ``partition``, in one run.

Usage::

    .venv/bin/python bench/intake.py [--files N] [--tree-files N] [--sentences N] [--out DIR]

What it measures (all on this machine, in one run, so the ratios compare):

1. a generated mixed corpus (txt, md, html, pdf, docx, xlsx, pptx, eml);
2. ``docproc scan --settle 0`` of that corpus as a real subprocess with a fresh
   state directory: wall time, files/s, MB/s, peak RSS (VmHWM) of the main
   process and of the worker processes, sampled from /proc every 50 ms; the
   ledger is then read (read-only) to check every file was extracted;
3. the same corpus through unstructured's ``partition`` alone, in a
   ``multiprocessing.Pool(2)`` whose workers apply docproc's offline
   neutralisation (``docproc.extract.partition.load_partition``). unstructured
   cannot read PDFs here (no pdf extra): they count as its failures, and the
   ratio is also given over the non-PDF files, for which docproc is timed on a
   second, PDF-free copy of the corpus (hard links);
4. text recall: per file both extracted, the share of unstructured's word
   tokens (lower-cased ``\\w+``, counted with multiplicity) found in docproc's text;
5. a re-scan of an unchanged tree of tiny .txt files (``--tree-files``, 0 to
   skip): first scan, re-scan, and whether the ledger's event count moved.

Figures are printed as plain text and written to ``<out>/intake.json``.
"""

from __future__ import annotations

import argparse
import collections
import json
import multiprocessing
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from procstats import ProcessSampler  # this folder is on sys.path when run as a script

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

KINDS = ("txt", "md", "html", "pdf", "docx", "xlsx", "pptx", "eml")
SAMPLE_SECONDS = 0.05
UNSTRUCTURED_PROCESSES = 2
RECALL_FLOOR = 0.95
WORD = re.compile(r"\w+")
MB = 1024 * 1024


# -- corpus -------------------------------------------------------------------------------


@dataclass
class Corpus:
    folder: Path
    files: list[Path]
    bytes: int
    per_kind: dict[str, int]

    @property
    def mb(self) -> float:
        return self.bytes / MB


def make_corpus(folder: Path, n: int, sentences: int) -> Corpus:
    from tests.docgen import make_mixed_corpus

    folder.mkdir(parents=True)
    files = sorted(make_mixed_corpus(folder, n, kinds=KINDS, sentences_per_file=sentences))
    per_kind = collections.Counter(p.suffix[1:] for p in files)
    total = sum(p.stat().st_size for p in files)
    return Corpus(folder, files, total, {k: per_kind[k] for k in KINDS if per_kind[k]})


def link_subset(corpus: Corpus, folder: Path, keep: set[str]) -> Corpus:
    """Hard-link the files whose suffix is in ``keep`` into ``folder`` (same bytes, no copy)."""
    folder.mkdir(parents=True)
    files = []
    for path in corpus.files:
        if path.suffix[1:] in keep:
            target = folder / path.name
            os.link(path, target)
            files.append(target)
    per_kind = {k: n for k, n in corpus.per_kind.items() if k in keep}
    return Corpus(folder, files, sum(p.stat().st_size for p in files), per_kind)


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


# -- process memory sampling ------------------------------------------------------------------


# -- docproc ------------------------------------------------------------------------------------


@dataclass
class ScanRun:
    seconds: float
    returncode: int
    main_rss_mb: float
    workers_rss_mb: float
    helpers_rss_mb: float
    workers_started: int
    main_cpu_s: float
    workers_cpu_s: float
    output: str


def docproc_scan(target: Path, state_dir: Path, log: Path) -> ScanRun:
    """Run ``python -m docproc scan --settle 0 target`` and sample its memory while it runs."""
    env = {**os.environ, "DOCPROC_STATE_DIR": str(state_dir)}
    command = [sys.executable, "-m", "docproc", "scan", "--settle", "0", str(target)]
    with open(log, "w") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(command, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        sampler = ProcessSampler(proc.pid, SAMPLE_SECONDS)
        sampler.start()
        returncode = proc.wait()
        seconds = time.perf_counter() - start
        sampler.stop()
    # Direct children of a scan are multiprocessing's helpers (forkserver, resource
    # tracker); the extraction workers are forked by the forkserver: grandchildren.
    main_cpu, workers_cpu = sampler.cpu_sum(0, 0), sampler.cpu_sum(2)
    return ScanRun(
        seconds=seconds,
        returncode=returncode,
        main_rss_mb=sampler.max_kb(0, 0) / 1024,
        workers_rss_mb=sampler.max_kb(2) / 1024,
        helpers_rss_mb=sampler.max_kb(1, 1) / 1024,
        workers_started=len(sampler.pids(2)),
        main_cpu_s=main_cpu,
        workers_cpu_s=workers_cpu,
        output=log.read_text(errors="replace")[-2000:],
    )


def read_ledger(state_dir: Path, query: str) -> list[tuple[Any, ...]]:
    """Run ``query`` on the ledger through a read-only connection."""
    uri = f"file:{state_dir / 'ledger.db'}?mode=ro"
    with sqlite3.connect(uri, uri=True) as conn:
        return conn.execute(query).fetchall()


@dataclass
class LedgerFile:
    state: str
    extractor: str | None
    error: str | None
    text_sha256: str | None


def ledger_files(state_dir: Path) -> dict[str, LedgerFile]:
    """Every file the ledger knows, by ``file://`` URI."""
    rows = read_ledger(
        state_dir,
        "SELECT s.uri, s.state, s.extractor, s.error, v.text_sha256"
        " FROM file_status s LEFT JOIN versions v ON v.sha256 = s.sha256",
    )
    return {uri: LedgerFile(state, ext, err, text) for uri, state, ext, err, text in rows}


def event_count(state_dir: Path) -> int:
    return int(read_ledger(state_dir, "SELECT count(*) FROM events")[0][0])


def docproc_texts(state_dir: Path, files: Iterable[Path]) -> tuple[dict[Path, str], list[str]]:
    """docproc's text of each extracted file, and a line per file that was not extracted."""
    from docproc.ledger import file_uri
    from docproc.textstore import TextStore

    store = TextStore(state_dir / "text")
    known = ledger_files(state_dir)
    texts, problems = {}, []
    for path in files:
        row = known.get(file_uri(path))
        if row is None:
            problems.append(f"{path.name}: not in the ledger")
        elif row.state != "extracted" or row.text_sha256 is None:
            problems.append(f"{path.name}: {row.state} ({row.error})")
        else:
            texts[path] = store.get(row.text_sha256)
    return texts, problems


# -- unstructured ---------------------------------------------------------------------------


def _pool_init() -> None:
    """Worker start: docproc's offline neutralisation, then unstructured's import."""
    from docproc.extract import partition

    partition.load_partition()


def _partition_one(path: Path) -> tuple[Path, str | None, str | None]:
    from unstructured.partition.auto import partition

    try:
        elements = partition(filename=str(path), strategy="fast", process_attachments=False)
    except Exception as exc:  # noqa: BLE001 - a failure of the library is a figure here
        return path, None, f"{type(exc).__name__}: {' '.join(str(exc).split())[:160]}"
    return path, "\n\n".join(t for e in elements if (t := str(e).strip())), None


@dataclass
class UnstructuredRun:
    seconds_all: float
    seconds_without_pdf: float
    texts: dict[Path, str] = field(default_factory=dict)
    errors: dict[Path, str] = field(default_factory=dict)


def unstructured_partition(files: list[Path]) -> UnstructuredRun:
    """Partition every file in a Pool(2); the non-PDF files first, then the PDFs.

    Both wall times start before the pool does; the first stops once the
    non-PDF files are done, so it is the time the non-PDF subset alone takes.
    """
    others = [p for p in files if p.suffix != ".pdf"]
    pdfs = [p for p in files if p.suffix == ".pdf"]
    run = UnstructuredRun(0.0, 0.0)
    ctx = multiprocessing.get_context("fork")
    start = time.perf_counter()
    with ctx.Pool(UNSTRUCTURED_PROCESSES, initializer=_pool_init) as pool:
        for batch in (others, pdfs):
            for path, text, error in pool.imap_unordered(_partition_one, batch, chunksize=4):
                if error is None and text is not None:
                    run.texts[path] = text
                else:
                    run.errors[path] = error or "no text"
            if batch is others:
                run.seconds_without_pdf = time.perf_counter() - start
        run.seconds_all = time.perf_counter() - start
    return run


# -- text recall ---------------------------------------------------------------------------------


def token_recall(reference: str, candidate: str) -> float:
    """Share of ``reference``'s word tokens (with multiplicity) that ``candidate`` also has."""
    wanted = collections.Counter(WORD.findall(reference.lower()))
    if not wanted:
        return 1.0
    found = collections.Counter(WORD.findall(candidate.lower()))
    return sum((wanted & found).values()) / sum(wanted.values())


@dataclass
class Recall:
    files: int
    mean: float
    minimum: float
    below: list[tuple[str, float]]


def text_recall(unstructured: dict[Path, str], docproc: dict[Path, str]) -> Recall:
    scores = {p: token_recall(text, docproc[p]) for p, text in unstructured.items() if p in docproc}
    if not scores:
        return Recall(0, 0.0, 0.0, [])
    below = sorted((p.name, round(s, 4)) for p, s in scores.items() if s < RECALL_FLOOR)
    return Recall(len(scores), statistics.fmean(scores.values()), min(scores.values()), below)


# -- the run ---------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=1000, help="mixed corpus size (1000)")
    parser.add_argument(
        "--tree-files", type=int, default=100_000, help="rescan tree size, 0 to skip (100000)"
    )
    parser.add_argument(
        "--sentences", type=int, default=4, help="sentences per corpus document, >= 4 (4)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out", help="JSON summary")
    parser.add_argument("--keep", action="store_true", help="keep the temporary corpus and state")
    return parser.parse_args(argv)


def rate(count: float, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def bench_corpus(work: Path, args: argparse.Namespace, summary: dict[str, Any]) -> None:
    """Parts 1 to 5: the corpus, docproc, unstructured, the ratio and the text recall."""
    corpus = make_corpus(work / "corpus", args.files, args.sentences)
    kinds = ", ".join(f"{k} {n}" for k, n in corpus.per_kind.items())
    say(f"corpus: {len(corpus.files)} files, {corpus.mb:.1f} MB ({kinds})")
    summary["corpus"] = {"files": len(corpus.files), "mb": corpus.mb, "per_kind": corpus.per_kind}
    texts, fps, sub_fps = bench_docproc(work, corpus, summary)
    uns, uns_fps, uns_sub_fps = bench_unstructured(corpus, summary)
    ratio_all, ratio_sub = rate(fps, uns_fps), rate(sub_fps, uns_sub_fps)
    say(f"ratio: {ratio_all:.1f}x (all files), {ratio_sub:.1f}x (excluding pdf); target >= 10x")
    summary["ratio"] = {"all_files": ratio_all, "without_pdf": ratio_sub, "target": 10}
    recall = text_recall(uns.texts, texts)
    say(
        f"text recall vs unstructured: mean {recall.mean:.3f}, min {recall.minimum:.3f}, "
        f"below {RECALL_FLOOR}: {len(recall.below)} (over {recall.files} files both extracted)"
    )
    for name, score in recall.below[:5]:
        say(f"  {name}: {score}")
    summary["recall"] = asdict(recall)


def bench_docproc(
    work: Path, corpus: Corpus, summary: dict[str, Any]
) -> tuple[dict[Path, str], float, float]:
    """Scan the corpus, then its PDF-free copy; returns docproc's texts and both files/s."""
    state = work / "state-corpus"
    scan = docproc_scan(corpus.folder, state, work / "scan-corpus.log")
    texts, problems = docproc_texts(state, corpus.files)
    fps = rate(len(corpus.files), scan.seconds)
    say(
        f"docproc scan: {scan.seconds:.1f} s, {fps:.0f} files/s, "
        f"{rate(corpus.mb, scan.seconds):.2f} MB/s, peak RSS main {scan.main_rss_mb:.0f} MB, "
        f"workers max {scan.workers_rss_mb:.0f} MB ({scan.workers_started} workers; "
        f"forkserver/tracker max {scan.helpers_rss_mb:.0f} MB)"
    )
    say(
        f"  CPU: main {scan.main_cpu_s:.1f} s, workers {scan.workers_cpu_s:.1f} s; "
        f"ledger: {len(texts)}/{len(corpus.files)} extracted" + show_problems(problems)
    )
    if scan.returncode != 0:
        say(f"  docproc scan exited {scan.returncode}:\n{scan.output}")
    subset = link_subset(corpus, work / "corpus-nopdf", set(KINDS) - {"pdf"})
    sub_scan = docproc_scan(subset.folder, work / "state-nopdf", work / "scan-nopdf.log")
    sub_fps = rate(len(subset.files), sub_scan.seconds)
    say(f"docproc scan, pdf excluded: {sub_scan.seconds:.1f} s, {sub_fps:.0f} files/s")
    summary["docproc_scan"] = {
        **asdict(scan),
        "files_per_s": fps,
        "mb_per_s": rate(corpus.mb, scan.seconds),
        "extracted": len(texts),
        "problems": problems,
    }
    summary["docproc_scan_nopdf"] = {
        **asdict(sub_scan),
        "files": len(subset.files),
        "files_per_s": sub_fps,
    }
    return texts, fps, sub_fps


def bench_unstructured(
    corpus: Corpus, summary: dict[str, Any]
) -> tuple[UnstructuredRun, float, float]:
    """Partition the corpus; returns the run and files/s over all files and without PDFs."""
    uns = unstructured_partition(corpus.files)
    non_pdf = sum(1 for p in corpus.files if p.suffix != ".pdf")
    uns_fps = rate(len(corpus.files), uns.seconds_all)
    uns_sub_fps = rate(non_pdf, uns.seconds_without_pdf)
    failed = collections.Counter(p.suffix[1:] for p in uns.errors)
    pdf_note = (
        f"pdf: {failed['pdf']} not readable without the pdf extra"
        if failed["pdf"]
        else "pdf: all read"
    )
    say(
        f"unstructured partition x{UNSTRUCTURED_PROCESSES}: {uns.seconds_all:.1f} s, "
        f"{uns_fps:.1f} files/s ({pdf_note}); without pdf {uns.seconds_without_pdf:.1f} s, "
        f"{uns_sub_fps:.1f} files/s"
    )
    others = [f"{p.name}: {e}" for p, e in sorted(uns.errors.items()) if p.suffix != ".pdf"]
    if others:
        say(f"  unstructured failed on {len(others)} other files" + show_problems(others))
    summary["unstructured"] = {
        "processes": UNSTRUCTURED_PROCESSES,
        "seconds_all": uns.seconds_all,
        "seconds_without_pdf": uns.seconds_without_pdf,
        "files_per_s": uns_fps,
        "files_per_s_without_pdf": uns_sub_fps,
        "failed_by_kind": dict(failed),
        "errors_sample": sorted(set(uns.errors.values()))[:5],
    }
    return uns, uns_fps, uns_sub_fps


def bench_rescan(work: Path, n: int, summary: dict[str, Any]) -> None:
    tree, state = work / "tree", work / "state-tree"
    start = time.perf_counter()
    size = make_tree(tree, n)
    made = time.perf_counter() - start
    first = docproc_scan(tree, state, work / "scan-tree-1.log")
    counts = dict(read_ledger(state, "SELECT state, count(*) FROM file_status GROUP BY state"))
    events_before = event_count(state)
    second = docproc_scan(tree, state, work / "scan-tree-2.log")
    events_after = event_count(state)
    unchanged = (
        "yes" if events_after == events_before else f"NO ({events_before} -> {events_after})"
    )
    say(
        f"rescan of {n} unchanged files: first scan {first.seconds:.1f} s "
        f"({rate(n, first.seconds):.0f} files/s), rescan {second.seconds:.2f} s, "
        f"events unchanged: {unchanged}; target <= 5 s for 100000"
    )
    say(
        f"  tree: {size / MB:.1f} MB written in {made:.1f} s; ledger states {counts}; "
        f"peak RSS main {first.main_rss_mb:.0f} MB (first), {second.main_rss_mb:.0f} MB (rescan)"
    )
    for label, run in (("first", first), ("rescan", second)):
        if run.returncode != 0:
            say(f"  {label} scan exited {run.returncode}:\n{run.output}")
    summary["rescan"] = {
        "files": n,
        "first": {**asdict(first), "files_per_s": rate(n, first.seconds)},
        "rescan": asdict(second),
        "states": counts,
        "events_before": events_before,
        "events_after": events_after,
        "target_seconds": 5.0,
    }


def show_problems(lines: list[str], limit: int = 10) -> str:
    if not lines:
        return ""
    more = f"\n    ... and {len(lines) - limit} more" if len(lines) > limit else ""
    return "; not extracted:\n    " + "\n    ".join(lines[:limit]) + more


def say(line: str) -> None:
    print(line, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="docproc-bench-"))
    summary: dict[str, Any] = {"python": sys.version.split()[0], "cpus": os.cpu_count()}
    try:
        if args.files > 0:
            bench_corpus(work, args, summary)
        if args.tree_files > 0:
            bench_rescan(work, args.tree_files, summary)
    finally:
        if args.keep:
            say(f"kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / "intake.json"
    target.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    say(f"summary: {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
