"""swiftops.runfolder: which folders are runs, a resumed run's parts, checkpoints, and the
JSON-lines logs read line by line; and swiftops.curves reading a resumed run as one."""

from __future__ import annotations

import json

import numpy as np
from helpers_events import make_run, write_jsonl

from swiftops.curves import read_curves
from swiftops.runfolder import (
    LineFollower,
    best_checkpoint,
    last_checkpoint,
    natural_key,
    parse_lines,
    run_chain,
    step_of,
    summary_line,
    versioned_runs,
)


def resumed_pair(root, *, with_events: bool):
    """v0 trained steps 1-10 (checkpoint-10), then was resumed from it as v1, which logged steps
    8-20 again (a resume re-logs the steps after its checkpoint's last log)."""
    out = root / "output"
    first_steps, first_loss = list(range(1, 11)), [3.0 - 0.1 * s for s in range(1, 11)]
    later_steps, later_loss = list(range(8, 21)), [1.0 - 0.01 * s for s in range(8, 21)]
    if with_events:
        v0 = make_run(out, (first_steps, first_loss), name="v0-20260101-000000")
        v1 = make_run(out, (later_steps, later_loss), name="v1-20260101-010000")
    else:
        v0, v1 = out / "v0-20260101-000000", out / "v1-20260101-010000"
        write_jsonl(v0, (first_steps, first_loss), max_steps=20)
        write_jsonl(v1, (later_steps, later_loss), max_steps=20)
    (v0 / "checkpoint-10").mkdir()
    # swift records the absolute path of the checkpoint it resumed: the folders were moved since
    moved = f"/elsewhere/output/{v0.name}/checkpoint-10"
    (v1 / "args.json").write_text(json.dumps({"resume_from_checkpoint": moved}))
    return v0, v1, dict(zip(first_steps[:7] + later_steps, first_loss[:7] + later_loss, strict=True))


def test_a_resumed_run_is_read_with_the_run_it_continues_later_points_winning(tmp_path):
    for with_events in (True, False):
        v0, v1, expected = resumed_pair(tmp_path / str(with_events), with_events=with_events)
        assert run_chain(v1) == [v0, v1] and run_chain(v0) == [v0]
        curves = read_curves(v1.parent)  # the output folder: the newest run, with its earlier part
        loss = curves.train_loss
        assert list(loss.steps) == sorted(expected), with_events
        assert np.allclose(loss.values, [expected[s] for s in sorted(expected)], atol=1e-6), with_events
        assert any("resumes v0-20260101-000000" in w for w in curves.warnings)


def test_a_run_that_resumed_nothing_it_can_find_is_read_alone(tmp_path):
    run = make_run(tmp_path, ([1, 2], [2.0, 1.0]))
    (run / "args.json").write_text(json.dumps({"resume_from_checkpoint": "/gone/v0-x/checkpoint-5"}))
    assert run_chain(run) == [run]
    assert list(read_curves(run).train_loss.steps) == [1, 2]


def test_versioned_runs_in_numeric_order_and_natural_sort():
    assert sorted(["job10", "job9", "job1"], key=natural_key) == ["job1", "job9", "job10"]


def test_versioned_runs_ignores_other_folders(tmp_path):
    for name in ("v10-20260101-000000", "v9-20260101-000000", "images", "v2-notatime"):
        (tmp_path / name).mkdir()
    assert [p.name for p in versioned_runs(tmp_path)] == ["v9-20260101-000000", "v10-20260101-000000"]


def test_lines_that_are_no_json_object_are_skipped_with_one_warning():
    data = b'{"loss": 1.0}\n[1, 2]\n3\n"text"\nnull\n\xff\xfe garbage\n{"loss": NaN}\n{"loss": Infin'
    lines = parse_lines(data, "logging.jsonl")
    assert lines.rows[0]["loss"] == 1.0 and np.isnan(lines.rows[1]["loss"])
    assert lines.cut and len(lines.rows) == 2
    assert any("5 line(s) are not JSON objects" in w for w in lines.warnings)
    assert any("cut short" in w for w in lines.warnings)
    assert not parse_lines(data, "x", live=True).warnings[1:]  # live: the cut line is not news


def test_line_follower_reads_only_whole_new_lines(tmp_path):
    log = tmp_path / "logging.jsonl"
    log.write_bytes(b'{"a": 1}\n{"b": ')
    follower = LineFollower(log)
    assert follower.new_rows() == [{"a": 1}]
    with open(log, "ab") as f:
        f.write(b'2}\n[3]\n{"c": 3}\n')
    assert follower.new_rows() == [{"b": 2}, {"c": 3}]
    assert follower.new_rows() == []


def test_step_of_reads_every_logger_s_step():
    assert step_of({"global_step/max_steps": "12/300"}) == 12
    assert step_of({"current_steps": 7}) == 7 and step_of({"step": 3}) == 3
    assert step_of({"global_step/max_steps": "?/300"}) is None and step_of({"step": True}) is None


def test_checkpoints_from_the_summary_line_else_the_folders(tmp_path):
    run = tmp_path / "v0-20260101-000000"
    write_jsonl(run, ([5, 10, 15], [2.0, 1.5, 1.0]), ([5, 10, 15], [2.0, 1.2, 1.6]), max_steps=15)
    for step in (5, 10, 15):
        (run / f"checkpoint-{step}").mkdir()
    # no summary line (a killed run): best from the eval losses, last from the folders
    assert best_checkpoint(run).name == "checkpoint-10" and last_checkpoint(run).name == "checkpoint-15"
    assert summary_line(run) == {}
    with open(run / "logging.jsonl", "a") as f:
        summary = {
            "best_model_checkpoint": "/moved/checkpoint-5",
            "last_model_checkpoint": "/x/checkpoint-15",
        }
        f.write(json.dumps(summary) + "\n")
    assert best_checkpoint(run) == run / "checkpoint-5"  # relocated into the run folder
