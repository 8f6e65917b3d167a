"""Local dataset files: which entries of data.dataset name a file rather than a hub id (the one
place that tells), and those files checked the way swift will read them, before swift starts: the
file is there and not empty, each row is a JSON object (a .jsonl line, an item of a .json list, a
.csv header), and the rows carry a column layout one of swift's preprocessors accepts. Without
this, an empty or malformed file passes every check and swift dies 12-16 s later (`StopIteration`,
a pyarrow error).

The column names are ms-swift's own (swift/dataset/preprocessor/core.py, 3.x and 4.x alike): the
one place swiftops names them. Matched case-insensitively, as swift's column renaming does."""

from __future__ import annotations

import csv
import functools
import io
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# file endings swift reads as local datasets; anything else without a path prefix is a hub id
DATA_FILE_SUFFIXES = (".jsonl", ".json", ".csv", ".txt", ".parquet", ".tsv")


def looks_like_local_path(entry: str) -> bool:
    """A dataset or model entry that names a local path rather than a hub id."""
    entry = strip_sampling(entry)
    return entry.startswith(("/", "./", "../", "~")) or entry.lower().endswith(DATA_FILE_SUFFIXES)


def local_path(entry: str) -> str | None:
    """The file a dataset entry names ('~/data.jsonl#500' -> '/home/me/data.jsonl'); None for a hub id."""
    return os.path.expanduser(strip_sampling(entry)) if looks_like_local_path(entry) else None


def strip_sampling(entry: str) -> str:
    """'org/set#500' -> 'org/set' (swift's sampling suffix)."""
    return re.sub(r"#\d+$", "", str(entry))


def dataset_entries(data: Mapping[str, Any], key: str) -> list[Any]:
    """data.dataset or data.val_dataset as a list (a bare string is one entry; swiftops.configs
    already makes it a list, this keeps a hand-made config from being read one character at a time)."""
    value = data.get(key)
    if isinstance(value, str):
        return [value] if value.strip() else []
    return list(value or [])


# MessagesPreprocessor: a list of {role, content} (or {from, value}) turns
MESSAGES_COLUMNS = ("messages", "conversation", "conversations")
# ResponsePreprocessor: a prompt column and an answer column (history and system optional)
QUERY_COLUMNS = ("query", "prompt", "input", "instruction", "question", "problem")
RESPONSE_COLUMNS = (
    "response",
    "answer",
    "output",
    "targets",
    "target",
    "answer_key",
    "answers",
    "solution",
    "text",
    "completion",
    "content",
)
# AlpacaPreprocessor reads instruction/input/output, all of them among the columns above
ACCEPTED_LAYOUTS = (
    "messages (or conversation, conversations)",
    "query/response (prompt, question, problem / answer, output, solution, completion, ...)",
    "instruction/input/output",
    "text alone",
)
# more than this is read only so far: a .jsonl's first lines are checked, a .json list not at all
READ_LIMIT_BYTES = 64 * 1024 * 1024
SHOWN_CHARS = 80


@dataclass(frozen=True)
class FileProblem:
    """What is wrong with a dataset file: where (line 0 = the file as a whole) and what was found."""

    line: int
    found: str
    accepted: str

    def sentence(self) -> str:
        where = f"line {self.line} " if self.line else ""
        return f"{where}{self.found}; {self.accepted}"


ROW_OBJECT = (
    'swift reads one JSON object per row, e.g. {"messages": [{"role": "user", "content": "..."}, ...]}'
)


def accepted_columns() -> str:
    return f"swift accepts the columns {'; '.join(ACCEPTED_LAYOUTS)}, or maps others with +args.columns"


def known_columns(keys) -> bool:
    """Whether a row's keys (or a .csv header) make a layout swift's preprocessors read: turns
    (messages), or an answer (a prompt column is optional: `text` alone is pretraining data)."""
    lowered = {str(k).strip().lower() for k in keys}
    return bool(lowered & set(MESSAGES_COLUMNS)) or bool(lowered & set(RESPONSE_COLUMNS))


def _shown(text: str) -> str:
    text = text.strip()
    return repr(text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 3] + "...")


def _kind(value) -> str:
    return {list: "a JSON list", str: "a JSON string", dict: "a JSON object"}.get(
        type(value), "a JSON number" if isinstance(value, int | float) else "JSON null"
    )


def row_problem(row, line: int, columns_mapped: bool) -> FileProblem | None:
    """Why one parsed row can't be read by swift (None: it can)."""
    if not isinstance(row, dict):
        return FileProblem(
            line, f"is {_kind(row)} ({_shown(json.dumps(row, ensure_ascii=False))})", ROW_OBJECT
        )
    if not columns_mapped and not known_columns(row):
        return FileProblem(line, f"has no column swift knows: found {sorted(row)}", accepted_columns())
    return None


def jsonl_problems(text: str, columns_mapped: bool) -> list[FileProblem]:
    """Every bad line of a JSON-lines text (blank lines are skipped, as swift's reader does)."""
    problems = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            reason = str(exc).split(":")[0]
            problems.append(FileProblem(number, f"is not JSON ({reason}): {_shown(line)}", ROW_OBJECT))
            continue
        problem = row_problem(row, number, columns_mapped)
        if problem:
            problems.append(problem)
    return problems


def json_problems(text: str, columns_mapped: bool) -> list[FileProblem]:
    """A .json file as the datasets library reads it: a list of row objects, a list of strings (rows
    of `text`), or JSON lines. An object of columns ({"query": [...], ...}) is not rows: swift 4.6
    read one as one row and failed (AssertionError: train_sample > 0)."""
    try:
        value = json.loads(text)
    except ValueError:
        return jsonl_problems(text, columns_mapped)
    if isinstance(value, dict) and len(text.strip().splitlines()) == 1:
        return jsonl_problems(text, columns_mapped)  # one row on one line
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return []  # read as rows of `text`
    if not isinstance(value, list):
        return [FileProblem(0, f"holds {_kind(value)}, not a list of rows", ROW_OBJECT)]
    if not value:
        return [FileProblem(0, "holds an empty list: no rows", ROW_OBJECT)]
    problems = []
    for i, row in enumerate(value):
        problem = row_problem(row, 0, columns_mapped)
        if problem:
            problems.append(FileProblem(0, f"row {i + 1} of its list {problem.found}", problem.accepted))
    return problems


def csv_problems(text: str, columns_mapped: bool, delimiter: str = ",") -> list[FileProblem]:
    header = next(csv.reader(io.StringIO(text), delimiter=delimiter), [])
    if not any(h.strip() for h in header):
        return [FileProblem(1, "is an empty header", "a .csv file starts with a header of column names")]
    if not columns_mapped and not known_columns(header):
        return [
            FileProblem(1, f"(the header) names no column swift knows: found {header}", accepted_columns())
        ]
    return []


def text_problems(suffix: str, text: str, columns_mapped: bool) -> list[FileProblem]:
    """The problems of a dataset file's text by its kind (pure). Other kinds (.txt, .parquet) are
    only checked for being there and not empty."""
    if not text.strip():
        return [FileProblem(0, "is empty (or only blank lines)", "give a file with at least one row")]
    if suffix == ".jsonl":
        return jsonl_problems(text, columns_mapped)
    if suffix == ".json":
        return json_problems(text, columns_mapped)
    if suffix in (".csv", ".tsv"):
        return csv_problems(text, columns_mapped, "\t" if suffix == ".tsv" else ",")
    return []


def file_problem(path: str, columns_mapped: bool = False) -> str | None:
    """What is wrong with the local dataset file at path, as one sentence (None: nothing found, or
    not a file: a folder, or not there, which the path check names). Cached by (path, size, mtime):
    a sweep checks each combination's config, and reads each file once."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    if not os.path.isfile(path):
        return None
    return _file_problem(path, stat.st_size, stat.st_mtime_ns, columns_mapped)


@functools.lru_cache(maxsize=256)
def _file_problem(path: str, size: int, mtime_ns: int, columns_mapped: bool) -> str | None:
    suffix = os.path.splitext(path)[1].lower()
    if size == 0:
        return FileProblem(0, "is empty (0 bytes)", "give a file with at least one row").sentence()
    if suffix not in (".jsonl", ".json", ".csv", ".tsv"):
        return None
    if suffix == ".json" and size > READ_LIMIT_BYTES:
        return None  # a list can't be judged from its beginning: swift will tell
    try:
        with open(path, "rb") as f:
            data = f.read(READ_LIMIT_BYTES)
    except OSError as exc:
        return f"can't be read: {exc.strerror or exc}"
    if size > READ_LIMIT_BYTES:  # the lines read whole; the rest is swift's to read
        data = data[: data.rfind(b"\n") + 1]
    try:
        text = data.decode("utf-8-sig")  # a byte-order mark is fine: swift's reader skips it
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return FileProblem(
            line, f"is not UTF-8 (byte {data[exc.start]:#04x})", "save the file as UTF-8"
        ).sentence()
    problems = text_problems(suffix, text, columns_mapped)
    if not problems:
        return None
    more = len(problems) - 1
    return problems[0].sentence() + (f" ({more} more such row(s) in the file)" if more else "")
