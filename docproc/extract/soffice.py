"""Legacy binary Office files (.doc, .ppt, ...) converted by LibreOffice headless.

No permissively licensed Python reader exists for these (antiword and catppt
failed on real files; see reference/DEPENDENCIES.md, section 8), so
``soffice --headless --convert-to`` turns the document into .docx or .pptx
and the native OOXML readers take it from there. Each conversion:

* runs in a private temporary directory with its own LibreOffice profile
  (``-env:UserInstallation``), so concurrent workers never share a lock or a
  half-written profile, and nothing is left behind;
* runs under its own timeout (what is left of the document's time for slow
  work, see :class:`~docproc.extract.reading.Reading`), in its own process
  group, killed with everything it forked (``soffice`` starts
  ``soffice.bin``); past the document's timeout the pool kills the worker's
  whole session anyway.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from docproc.errors import PermanentExtractionError
from docproc.extract import ooxml, proc, route
from docproc.extract.reading import Reading

_TARGETS = {
    "doc": ("docx", ooxml.docx),
    "dot": ("docx", ooxml.docx),
    "wpd": ("docx", ooxml.docx),
    "sxw": ("docx", ooxml.docx),
    "ppt": ("pptx", ooxml.pptx),
    "pps": ("pptx", ooxml.pptx),
    "pot": ("pptx", ooxml.pptx),
}


def extract(data: bytes, kind: str, reading: Reading) -> str:
    """Convert ``data`` (a ``kind`` file, e.g. ``"doc"``) and read the result."""
    soffice = shutil.which("soffice")
    if soffice is None:
        raise PermanentExtractionError(f"{kind} needs LibreOffice: {route.SOFFICE_HINT}")
    target, reader = _TARGETS[kind]
    with tempfile.TemporaryDirectory(prefix="docproc-soffice-") as scratch:
        folder = Path(scratch)
        source = folder / f"document.{kind}"
        source.write_bytes(data)
        argv = [
            soffice,
            f"-env:UserInstallation={(folder / 'profile').as_uri()}",
            "--headless", "--norestore", "--nolockcheck", "--nodefault", "--nologo",
            "--convert-to", target, "--outdir", str(folder / "out"), str(source),
        ]  # fmt: skip
        env = {**os.environ, "HOME": scratch, "SAL_USE_VCLPLUGIN": "svp"}
        timeout = max(1.0, reading.time_left())
        proc.run(argv, timeout=timeout, what="LibreOffice", env=env, cwd=folder)
        converted = folder / "out" / f"document.{target}"
        if not converted.is_file():
            raise PermanentExtractionError(
                f"{kind} could not be converted by LibreOffice (damaged or not a {kind}?)"
            )
        return reader(converted.read_bytes(), reading.limits)
