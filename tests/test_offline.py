"""Extraction makes no network attempt, including through unstructured and spaCy.

Each check runs in a fresh interpreter, so the network guard is in place before
docproc.extract (and later unstructured) is imported, and no state from other
tests (an already imported unstructured, a patched socket) can hide an attempt.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.docgen import make_corpus

GUARD = textwrap.dedent(
    """
    import socket, traceback
    ATTEMPTS = []
    LOOPBACK = {"127.0.0.1", "::1", "localhost", None}

    def _record(kind, host):
        frame = traceback.extract_stack(limit=4)[0]
        ATTEMPTS.append((kind, str(host), f"{frame.filename}:{frame.lineno}"))
        raise OSError(f"network disabled by test guard ({kind} {host})")

    _getaddrinfo, _connect = socket.getaddrinfo, socket.socket.connect

    def getaddrinfo(host, *args, **kwargs):
        if host not in LOOPBACK:
            _record("dns", host)
        return _getaddrinfo(host, *args, **kwargs)

    def create_connection(address, *args, **kwargs):
        _record("connect", address[0])

    def connect(self, address):
        if self.family != socket.AF_UNIX and address[0] not in LOOPBACK:
            _record("connect", address[0])
        return _connect(self, address)

    socket.getaddrinfo = getaddrinfo
    socket.create_connection = create_connection
    socket.socket.connect = connect
    """
)

EXTRACT = textwrap.dedent(
    """
    import hashlib, json, sys, threading, time
    from pathlib import Path
    from docproc.extract import run_task
    from docproc.extract import partition
    from docproc.models import Extraction, ExtractLimits, ExtractTask
    from docproc.textstore import TextStore

    results = {}
    store = TextStore(Path(sys.argv[1]) / "text")
    for name in sys.argv[2:]:
        path = Path(name)
        task = ExtractTask(hashlib.sha256(path.read_bytes()).hexdigest(), path)
        outcome = run_task(task, ExtractLimits(), store)
        text = store.get(outcome.text_sha256) if isinstance(outcome, Extraction) else ""
        results[path.name] = [getattr(outcome, "extractor", None), text]
    # No common format reaches unstructured any more (only rst/org with pandoc do):
    # partition the XML through it directly, the way the long tail would go.
    xml = next(Path(n) for n in sys.argv[2:] if n.endswith(".xml"))
    results["unstructured"] = ["unstructured:xml",
                               partition.extract(xml.read_bytes(), "xml", ExtractLimits())]
    # Give any background (telemetry) thread a moment to try, and be recorded.
    time.sleep(0.5)
    spacy_used = partition._blank_nlp.cache_info().currsize
    print(json.dumps({"attempts": ATTEMPTS, "results": results, "spacy": spacy_used}))
    """
)


def run_isolated(code: str, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("DO_NOT_TRACK", "SCARF_NO_ANALYTICS")}
    result = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=Path(__file__).parent.parent,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1]


def test_extraction_makes_no_network_attempt(tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path)
    wanted = {"plain.txt", "sample.html", "sample.docx", "sample.pdf", "sample.xml", "sample.csv"}
    paths = [p for p in corpus if p.name in wanted]
    report = json.loads(run_isolated(GUARD + EXTRACT, str(tmp_path), *map(str, paths)))
    assert report["attempts"] == []
    for path in paths:
        extractor, text = report["results"][path.name]
        assert extractor is not None, path.name
        assert [s for s in corpus[path] if s not in text] == [], path.name
    xml = next(p for p in paths if p.suffix == ".xml")
    assert [s for s in corpus[xml] if s not in report["results"]["unstructured"][1]] == []
    assert report["spacy"] == 1  # the XML's narrative text went through spaCy, offline


def test_spacy_model_hook_exists_in_installed_unstructured() -> None:
    """Fails loudly when an unstructured upgrade moves the private loader we replace."""
    code = textwrap.dedent(
        """
        import os
        os.environ["DO_NOT_TRACK"] = "1"
        import unstructured.nlp.tokenize as tokenize
        assert callable(tokenize._get_nlp), "unstructured.nlp.tokenize._get_nlp is gone"
        # The pipeline must look the loader up by global name, or replacing it does nothing.
        assert "_get_nlp" in tokenize._run_pipeline.__code__.co_names
        from docproc.extract.partition import load_partition, _blank_nlp
        load_partition()
        assert tokenize._get_nlp is _blank_nlp
        doc = tokenize._run_pipeline("One sentence here. Another one there.")
        print(doc.has_annotation("SENT_START"))
        """
    )
    assert run_isolated(code) == "True"


def test_the_guard_sees_what_unstructured_does_when_not_neutralised() -> None:
    """Proves the guard has teeth: a bare import of unstructured phones home."""
    code = GUARD + "import unstructured.partition.auto\nprint(ATTEMPTS)"
    assert "packages.unstructured.io" in run_isolated(code)
