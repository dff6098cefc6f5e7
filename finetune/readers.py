"""File-level reading shared by the task kinds: encodings, split files, delimited tables by header name, and the
deterministic splits used when a data set lacks a train or dev file.

Every failure is a DataError naming the file, and the line and field where there is one.
"""
from __future__ import annotations

import csv
import glob
import hashlib
import io
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from paddle_electra.errors import DataError
from paddle_electra.fileio import read_bytes

# Split names as they appear in file names. "eval" is the official code's name for the (labelled) test split;
# "training"/"valid" are DRCD's and CAIL's spellings.
SPLIT_ALIASES = {"train": ("train", "training"), "dev": ("dev", "valid", "validation"), "test": ("test", "eval")}


def read_text(path) -> Tuple[str, str]:
    """(text, encoding) of a UTF-8 (BOM allowed) or GB18030 file; CAIL 2018 copies come in either."""
    raw = read_bytes(path)
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as utf8_error:
        try:
            # GB18030 (not GBK: the CAIL sample has a byte GBK rejects) decodes any byte string that is valid in it
            return raw.decode("gb18030"), "gb18030"
        except UnicodeDecodeError:
            line = raw[:utf8_error.start].count(b"\n") + 1
            raise DataError(f"neither UTF-8 nor GB18030 (bad byte at offset {utf8_error.start})",
                            path=path, line=line) from None


def find_split_file(data_dir, split: str, extensions: Sequence[str]) -> Optional[str]:
    """The file for `split` in `data_dir`: `<split>.<ext>` first, else exactly one file whose name contains the
    split name or an alias (cmrc2018_train.json, DRCD_dev.json, data_valid.json); None if there is none."""
    aliases = SPLIT_ALIASES[split]
    for alias in aliases:
        for ext in extensions:
            path = os.path.join(data_dir, f"{alias}.{ext}")
            if os.path.isfile(path):
                return path
    matches = set()
    for ext in extensions:
        for path in glob.glob(os.path.join(glob.escape(os.fspath(data_dir)), f"*.{ext}")):
            stem = os.path.basename(path)[: -len(ext) - 1].lower()
            words = stem.replace("-", "_").replace(".", "_").split("_")
            if any(alias in words for alias in aliases):
                matches.add(path)
    if len(matches) > 1:
        raise DataError(f"several files could be the {split} split: {sorted(os.path.basename(m) for m in matches)}; "
                        f"name one {split}.{extensions[0]}", path=data_dir)
    return matches.pop() if matches else None


@dataclass
class ReadStats:
    """What a reader did besides returning examples: counts of examples skipped, by documented reason."""

    read: int = 0
    skipped: Dict[str, int] = field(default_factory=dict)
    notes: Dict[str, int] = field(default_factory=dict)  # counted fixes that keep the example (e.g. realigned)

    def skip(self, reason: str):
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def note(self, what: str):
        self.notes[what] = self.notes.get(what, 0) + 1

    def to_dict(self) -> dict:
        return {"read": self.read, "skipped": dict(self.skipped), "notes": dict(self.notes)}


def _delimited_rows(path, text) -> List[Tuple[int, List[str]]]:
    """(line number, fields) of a TSV (tab, no quoting, as the official reader) or CSV (RFC 4180 quoting)."""
    rows = []
    if os.fspath(path).lower().endswith(".csv"):
        reader = csv.reader(io.StringIO(text, newline=""))
        try:
            for record in reader:
                if record:
                    rows.append((reader.line_num, record))
        except csv.Error as e:
            raise DataError(f"malformed CSV ({e})", path=path, line=reader.line_num) from None
    else:
        for number, line in enumerate(text.split("\n"), 1):
            line = line.rstrip("\r")
            if line:
                rows.append((number, line.split("\t")))
    return rows


def read_table(path, columns: Dict[str, Sequence[str]], optional: Sequence[str] = (),
               headerless: Optional[Sequence[str]] = None, looks_like_data=None) -> List[Tuple[int, Dict[str, str]]]:
    """Rows of a TSV/CSV file as {column: value}, columns found by header name.

    `columns` maps our name (text_a, label, ...) to the header names accepted for it, in preference order; names in
    `optional` may be missing (their value is then absent from the row dicts). A file without a header is read by
    position with the `headerless` order, but only when `looks_like_data(first_row_dict)` says its first row is an
    example; otherwise a missing column is a DataError quoting the header.
    """
    text, _ = read_text(path)
    rows = _delimited_rows(path, text)
    if not rows:
        raise DataError("file is empty", path=path)
    header_line, header = rows[0]
    normalized = [h.strip().lower() for h in header]
    positions, missing = {}, []
    for name, accepted in columns.items():
        hit = next((normalized.index(a.lower()) for a in accepted if a.lower() in normalized), None)
        if hit is None:
            if name not in optional:
                missing.append(name)
        else:
            positions[name] = hit
    body = rows[1:]
    if missing:
        as_data = None
        if headerless is not None and len(header) == len(headerless):
            as_data = dict(zip(headerless, header))
        if as_data is not None and looks_like_data is not None and looks_like_data(as_data):
            positions = {name: i for i, name in enumerate(headerless)}
            body, header = rows, list(headerless)
        else:
            name = missing[0]
            raise DataError(f"no column for {name}: the header is {header!r}; accepted names for {name}: "
                            f"{list(columns[name])}", path=path, line=header_line, field=name)
    width = len(header)
    out = []
    for number, fields in body:
        if len(fields) != width:
            raise DataError(f"{len(fields)} fields where the header has {width} (a stray tab or quote?)",
                            path=path, line=number)
        out.append((number, {name: fields[i] for name, i in positions.items()}))
    return out


def stable_fraction(key: str) -> float:
    """A number in [0, 1) fixed by `key` alone (sha1): a split then depends on neither file order nor hash seeds."""
    return int.from_bytes(hashlib.sha1(key.encode("utf-8")).digest()[:8], "big") / 2 ** 64


def split_by_group(items: list, fraction: float, group_key) -> Tuple[list, list]:
    """(rest, held_out): items whose group falls in the first `fraction` go to held_out. Grouping (premise, article)
    keeps near-copies on one side, so a held-out example never shares its context with a training one."""
    rest, held_out = [], []
    for item in items:
        (held_out if stable_fraction(group_key(item)) < fraction else rest).append(item)
    return rest, held_out


def subsample(items: list, limit: Optional[int], key) -> list:
    """At most `limit` items, chosen by a stable hash of `key(item)` and kept in file order."""
    if limit is None or len(items) <= limit:
        return items
    chosen = sorted(range(len(items)), key=lambda i: stable_fraction(key(items[i])))[:limit]
    return [items[i] for i in sorted(chosen)]
