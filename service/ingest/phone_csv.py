"""Reading a CSV of phone numbers: all of it is valid, or nothing of it is imported."""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import TextIO

__all__ = ["MAX_ROWS", "CsvError", "read_phone_numbers"]

MAX_ROWS = 1_000_000
_COLUMN = "phone_number"
# Digits with the punctuation people write numbers with; what the number means is decided later,
# when projections normalise both sides to E.164.
_PHONE = re.compile(r"\+?[0-9 ().\-]{3,40}")
_MIN_DIGITS = 3


class CsvError(Exception):
    """Names the file and line, never the rest of the row."""


def read_phone_numbers(path: Path) -> list[str]:
    """The distinct numbers of the `phone_number` column, in file order. Raises CsvError."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            return _read(path, handle)
    except UnicodeDecodeError:
        raise CsvError(f"{path}: not UTF-8 text") from None
    except csv.Error as exc:
        raise CsvError(f"{path}: not valid CSV ({exc})") from None
    except OSError as exc:
        raise CsvError(f"{path}: cannot read ({exc.strerror})") from None


def _read(path: Path, handle: TextIO) -> list[str]:
    rows = csv.reader(handle)
    header = next(rows, None)
    if header is None:
        raise CsvError(f"{path}: empty file; expected a header row with '{_COLUMN}'")
    names = [name.strip().lower() for name in header]
    if _COLUMN not in names:
        raise CsvError(f"{path}:{rows.line_num}: the header row has no '{_COLUMN}' column")
    column = names.index(_COLUMN)
    numbers: dict[str, None] = {}
    for row in rows:
        if not any(cell.strip() for cell in row):
            continue  # blank lines, common at the end of exported files
        if len(row) != len(header):
            raise CsvError(f"{path}:{rows.line_num}: {len(row)} fields where the header has {len(header)}")
        number = row[column].strip()
        if not _PHONE.fullmatch(number) or sum(c.isdigit() for c in number) < _MIN_DIGITS:
            raise CsvError(f"{path}:{rows.line_num}: '{_COLUMN}' is empty or not a phone number")
        numbers[number] = None
        if len(numbers) > MAX_ROWS:
            raise CsvError(f"{path}:{rows.line_num}: more than {MAX_ROWS} numbers; split the file")
    return list(numbers)
