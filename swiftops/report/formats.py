"""How the page writes values: losses, durations, params, paths and times (its Jinja filters)."""

from __future__ import annotations

import base64
import hashlib
import math
import os
import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from markupsafe import Markup, escape

from swiftops.summary import param_value

# ---------------------------------------------------------------------------------------------
# formatting (Jinja filters)


def finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def fmt_loss(x: Any) -> str:
    """A loss for the page: 4 significant digits; '' when absent, 'NaN'/'inf' as such."""
    if x is None:
        return ""
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return f"{x:.4g}" if math.isfinite(x) else str(x)
    return str(x)


def fmt_duration(seconds: Any) -> str:
    if not finite(seconds):
        return ""
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def fmt_value(x: Any) -> str:
    """A param value: numbers as Python writes them (exact), None as 'null'."""
    if x is None:
        return "null"
    if isinstance(x, (list, tuple, dict)):
        return str(param_value(x))
    return str(x)


def param_texts(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> list[dict[str, str]]:
    """Each param cell's text: the value as fmt_value writes it, with the folder that every absolute
    path of its column shares cut off. A dataset column then reads `tutorial_zh_100_train.jsonl`,
    not `/root/.cache/swiftops/tiny-v1-tf5/d...`: the part that tells runs apart, in a table that has
    to fit a screen. The cell's title keeps the whole value."""
    texts = [{col: fmt_value(row.get(col)) for col in columns} for row in rows]
    for col in columns:
        values = [row.get(col) for row in rows]
        paths = [p for value in values for p in _items(value) if isinstance(p, str) and os.path.isabs(p)]
        if not paths:
            continue
        shared = os.path.commonpath(paths)
        if shared in paths:  # one file, or a file and its own folder: keep the file's name
            shared = os.path.dirname(shared)
        if shared in ("", "/"):
            continue
        for text, value in zip(texts, values, strict=True):
            cut = [os.path.relpath(p, shared) if p in paths else p for p in _items(value)]
            text[col] = fmt_value(cut if isinstance(value, list | tuple) else cut[0])
    return texts


def breakable(text: str) -> Any:
    """text as markup that may wrap after `/`, `_` and `.` (file names, dotted keys) but nowhere
    else: a long cell wraps at a readable place, and short text (a number: 5e-05) never breaks."""
    escaped = str(escape(text))
    if len(text) <= 12:
        return Markup(f'<span class="nobreak">{escaped}</span>')
    return Markup(re.sub(r"([/_.])", r"\1<wbr>", escaped))


def _items(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def sort_key(x: Any) -> str:
    """data-sort for a table cell: numbers as numbers, the rest as text, nothing as ''."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, (int, float)):
        return repr(float(x))
    return str(x)


def short_path(path: str | None, base: Path) -> str:
    """path relative to base when it lies under it (shorter to read), else as is."""
    if not path:
        return ""
    try:
        return str(Path(path).relative_to(base))
    except ValueError:
        return str(path)


def fmt_time(iso: str | None) -> str:
    if not iso:
        return ""
    try:
        return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M:%S %z").strip()
    except ValueError:
        return iso


def sha256_of(text: str) -> str:
    return base64.b64encode(hashlib.sha256(str(text).encode("utf-8")).digest()).decode("ascii")
