"""Extract files with kreuzberg, 2 processes, cache off: run by bench/intake.py in kreuzberg's
own virtual environment (it is never a dependency of docproc).

Usage: ``<kreuzberg venv>/bin/python bench/kreuzberg_run.py LIST OUT [PROCESSES]``
where LIST holds one path per line; OUT receives ``{path: [text, error]}`` as JSON.
Only the standard library and kreuzberg are imported here.
"""

from __future__ import annotations

import json
import multiprocessing
import sys
from typing import Any

_config: Any = None


def _init() -> None:
    global _config
    import kreuzberg

    _config = kreuzberg.ExtractionConfig(use_cache=False)


def _one(path: str) -> tuple[str, str | None, str | None]:
    import kreuzberg

    try:
        result = kreuzberg.extract_file_sync(path, config=_config)
    except Exception as exc:  # noqa: BLE001 - a library failure is a figure here
        return path, None, f"{type(exc).__name__}: {' '.join(str(exc).split())[:160]}"
    return path, result.content, None


def main() -> int:
    listing, out = sys.argv[1], sys.argv[2]
    processes = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    with open(listing) as handle:
        files = [line.rstrip("\n") for line in handle if line.strip()]
    with multiprocessing.get_context("fork").Pool(processes, initializer=_init) as pool:
        results = {p: [t, e] for p, t, e in pool.imap_unordered(_one, files, chunksize=8)}
    with open(out, "w") as handle:
        json.dump(results, handle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
