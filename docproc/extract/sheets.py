"""Legacy and binary workbooks (.xls, .xlsb) through python-calamine (MIT, Rust).

The only module importing python_calamine. Sheets in workbook order: the
sheet name, then one tab-separated line per non-empty row, like the .xlsx
reader. Numbers are written in their shortest faithful form.
"""

from __future__ import annotations

import io
from datetime import date, datetime, time, timedelta
from typing import Any

import python_calamine

from docproc.errors import PermanentExtractionError
from docproc.extract.reading import Reading

_ROW_LIMIT = 1_000_000  # rows per sheet; the character limit cuts the text anyway


def extract(data: bytes, _reading: Reading) -> str:
    """Return every sheet's name and rows."""
    try:
        workbook = python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(data))
    except python_calamine.PasswordError as exc:
        raise PermanentExtractionError("workbook is password protected") from exc
    except (python_calamine.CalamineError, ValueError, OSError) as exc:
        raise PermanentExtractionError(f"workbook is damaged or not a workbook ({exc})") from exc
    sheets = []
    try:
        for name in workbook.sheet_names:
            rows = _rows(workbook.get_sheet_by_name(name))
            if rows:
                sheets.append("\n".join([name, *rows]))
    except (python_calamine.CalamineError, ValueError) as exc:
        raise PermanentExtractionError(f"workbook is damaged ({exc})") from exc
    finally:
        workbook.close()
    return "\n\n".join(sheets)


def _rows(sheet: Any) -> list[str]:
    rows = []
    for index, row in enumerate(sheet.iter_rows()):
        if index >= _ROW_LIMIT:
            break
        line = "\t".join(_cell(value) for value in row).strip()
        if line:
            rows.append(line)
    return rows


def _cell(value: object) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else f"{value:.15g}"
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return str(value)
    return "" if value is None else str(value)
