"""Local dataset files swift can't read are refused before launch, naming the file, the line,
what was found and what swift accepts; hub ids are not read; a bare string is one dataset."""

from __future__ import annotations

import json
import os

import pytest

from swiftops.configs import with_dataset_lists
from swiftops.dataset_files import MESSAGES_COLUMNS, RESPONSE_COLUMNS, _file_problem, file_problem
from swiftops.validate import dataset_problems

MESSAGES = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
GOOD_LINE = json.dumps(MESSAGES)


def write(tmp_path, name: str, text: str | bytes):
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return str(path)


def problems(path: str, key: str = "dataset", **args) -> list[str]:
    return dataset_problems({"data": {key: [path]}, "args": args})


def test_a_good_file_and_a_hub_id_pass(tmp_path):
    path = write(tmp_path, "train.jsonl", f"{GOOD_LINE}\n\n{GOOD_LINE}\n")  # a blank line is skipped
    assert problems(path) == []
    assert problems(f"{path}#50") == []  # swift's sampling suffix
    assert dataset_problems({"data": {"dataset": ["AI-ModelScope/alpaca-gpt4-data-zh#500"]}}) == []


@pytest.mark.parametrize(
    ("name", "text", "said"),
    [
        ("empty.jsonl", "", ["is empty (0 bytes)", "at least one row"]),
        ("blank.jsonl", "\n  \n", ["is empty (or only blank lines)"]),
        ("text.jsonl", "hello there\n", ["line 1 is not JSON", "'hello there'", "one JSON object per row"]),
        ("list.jsonl", '["hi", "hello"]\n', ["line 1 is a JSON list", "one JSON object per row"]),
        (
            "columns.jsonl",
            '{"prompt_text": "hi", "reply": "hello"}\n',
            ["line 1 has no column swift knows", "['prompt_text', 'reply']", "messages", "query/response"],
        ),
        ("dict.json", '{\n  "rows": 2\n}\n', ["holds a JSON object, not a list of rows"]),
        ("list.json", "[1, 2]", ["row 1 of its list is a JSON number"]),
        ("empty.json", "[]", ["an empty list"]),
        ("header.csv", "prompt_text,reply\nhi,hello\n", ["line 1 (the header) names no column swift knows"]),
    ],
)
def test_each_defect_is_named_with_the_file_the_line_and_what_is_accepted(tmp_path, name, text, said):
    path = write(tmp_path, name, text)
    (problem,) = problems(path)
    assert problem.startswith(f"data.dataset: {path!r} "), problem
    for words in said:
        assert words in problem, problem


def test_line_57_alone_bad_is_named_by_its_line(tmp_path):
    lines = [GOOD_LINE] * 100
    lines[56] = '{"messages": [{"role": "user", "content": "hi"}'  # cut off
    path = write(tmp_path, "train.jsonl", "\n".join(lines) + "\n")
    (problem,) = problems(path, key="val_dataset")
    assert problem.startswith(f"data.val_dataset: {path!r} line 57 is not JSON"), problem
    assert "more such" not in problem  # the only bad line


def test_several_bad_lines_name_the_first_and_count_the_rest(tmp_path):
    path = write(tmp_path, "train.jsonl", f"{GOOD_LINE}\n[1]\n{GOOD_LINE}\n2\nnope\n")
    (problem,) = problems(path)
    assert "line 2 is a JSON list" in problem and "(2 more such row(s) in the file)" in problem


def test_a_byte_order_mark_is_fine_and_bad_utf8_is_not(tmp_path):
    assert problems(write(tmp_path, "bom.jsonl", b"\xef\xbb\xbf" + GOOD_LINE.encode() + b"\n")) == []
    assert problems(write(tmp_path, "bom.csv", b"\xef\xbb\xbfquery,response\nhi,hello\n")) == []
    (problem,) = problems(write(tmp_path, "latin1.jsonl", GOOD_LINE.encode() + b'\n{"text": "caf\xe9"}\n'))
    assert "line 2 is not UTF-8" in problem


@pytest.mark.parametrize(
    "row",
    [
        {"Messages": MESSAGES["messages"]},  # swift matches column names case-insensitively
        {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]},
        {"query": "hi", "response": "hello"},
        {"instruction": "say hi", "input": "", "output": "hello"},
        {"question": "1+1?", "answer": "2"},
        {"text": "pretraining text"},
    ],
)
def test_the_layouts_swift_s_preprocessors_read_pass(tmp_path, row):
    assert problems(write(tmp_path, "train.jsonl", json.dumps(row) + "\n")) == []


def test_the_column_names_are_swift_s():
    assert set(MESSAGES_COLUMNS) == {"messages", "conversation", "conversations"}
    assert {"response", "output", "answer", "text", "completion"} <= set(RESPONSE_COLUMNS)


def test_columns_mapped_by_args_columns_are_not_checked(tmp_path):
    path = write(tmp_path, "train.jsonl", '{"prompt_text": "hi", "reply": "hello"}\n')
    assert problems(path, columns={"prompt_text": "query", "reply": "response"}) == []
    assert problems(write(tmp_path, "list.jsonl", "[1]\n"), columns={"a": "query"})  # still not a row


def test_what_the_datasets_library_reads_from_a_json_file_passes(tmp_path):
    assert problems(write(tmp_path, "lines.json", f"{GOOD_LINE}\n{GOOD_LINE}\n")) == []
    assert problems(write(tmp_path, "list.json", json.dumps([MESSAGES, MESSAGES]))) == []
    assert problems(write(tmp_path, "strings.json", json.dumps(["a text", "another"]))) == []  # `text` rows
    columns = {
        "query": ["hi", "1+1?"],
        "response": ["hello", "2"],
    }  # swift 4.6 read it as one row, then failed
    (problem,) = problems(write(tmp_path, "columns.json", json.dumps(columns, indent=2)))
    assert "holds a JSON object, not a list of rows" in problem


def test_a_file_is_read_once_until_it_changes(tmp_path):
    path = write(tmp_path, "train.jsonl", f"{GOOD_LINE}\n")
    _file_problem.cache_clear()
    for _ in range(5):  # a sweep's combinations
        assert file_problem(path) is None
    assert _file_problem.cache_info().misses == 1
    with open(path, "a") as f:
        f.write("[1]\n")
    os.utime(path, ns=(1, 10**18))  # a new mtime even on a coarse clock
    assert "line 2 is a JSON list" in file_problem(path)


def test_a_file_past_the_read_limit_is_checked_as_far_as_it_was_read(tmp_path, monkeypatch):
    import swiftops.dataset_files as dataset_files

    monkeypatch.setattr(dataset_files, "READ_LIMIT_BYTES", 1000)
    lines = [GOOD_LINE] * 100 + ["[1]"]  # the bad line lies past the limit
    path = write(tmp_path, "big.jsonl", "\n".join(lines) + "\n")
    assert file_problem(path) is None
    assert file_problem(write(tmp_path, "big.json", json.dumps([1] * 1000))) is None  # a list: not read


def test_a_missing_file_is_named_and_a_folder_is_not_read(tmp_path):
    (problem,) = problems(str(tmp_path / "nope.jsonl"))
    assert "does not exist" in problem
    assert problems(str(tmp_path) + "/") == []


def test_a_bare_string_is_one_dataset():
    plain = with_dataset_lists({"data": {"dataset": "/data/mine.jsonl", "val_dataset": "", "x": "y"}})
    assert plain["data"] == {"dataset": ["/data/mine.jsonl"], "val_dataset": [], "x": "y"}
    (problem,) = dataset_problems({"data": {"dataset": "/nope/mine.jsonl"}})  # not one char at a time
    assert problem == "data.dataset: '/nope/mine.jsonl' does not exist; give an existing file or a hub id"
