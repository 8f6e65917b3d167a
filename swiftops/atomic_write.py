"""A file's text replaced in one step: a reader, or a process killed part-way, sees the old file or
the new one, never half of either."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def write_text_atomically(path: str | Path, text: str) -> Path:
    """Write text to a hidden temporary file beside path, then rename it over path.

    The temporary file is named by this process, so concurrent writers (parallel jobs filling one
    cache) never write into one another's. On any failure (a full disk stops the write part-way)
    it is removed and the error raised: path is left as it was.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        # a partial temporary file would only take more space on a disk that is already full
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return path
