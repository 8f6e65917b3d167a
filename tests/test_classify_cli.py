"""`python -m swiftops.classify`: a sweep's runs as a table or JSON; bad paths are errors
(exit 2), failed runs are results (exit 0)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from helpers_events import decay, make_run, steps_of

from swiftops.classify import main
from swiftops.record import RunRecord, write_record

KEYS = {"path", "verdict", "confidence", "reasons", "figures", "next"}


def job(sweep, num, *, params, exit_code=0, train=None, evals=None):
    """A Hydra job folder as the runner leaves it: run.json, and swift's run under output/."""
    job_dir = sweep / str(num)
    run_dir = make_run(job_dir / "output", train, evals) if train is not None else None
    record = RunRecord(
        status="completed" if exit_code == 0 else "failed",
        job_dir=str(job_dir),
        argv=["swift", "sft"],
        params=params,
        exit_code=exit_code,
        output_dir=str(job_dir / "output"),
        run_dir=str(run_dir) if run_dir else None,
        job_num=num,
    )
    write_record(record)
    return job_dir, run_dir


@pytest.fixture
def sweep(tmp_path):
    """Job 0 diverged (exit 0, as swift does), job 1 converged, job 2 died on a bad flag
    before writing any run folder."""
    root = tmp_path / "sweep"
    job(root, 0, params={"lr": 0.1, "epochs": 1}, train=([1, 2, 3, 4, 5, 6], [3.5, 6.1, 10.4, 8.2, 5.9, 5.8]))
    steps = steps_of(100)
    job(
        root,
        1,
        params={"lr": 5e-5, "epochs": 3},
        train=(steps, decay(steps, 2.0, 0.8, 0.1)),
        evals=(steps_of(100, 10, first=10), decay(steps_of(100, 10, first=10), 2.1, 1.0, 0.1)),
    )
    job(root, 2, params={"lr": 5e-5, "epochs": 3}, exit_code=2)
    return root


def test_the_table_shows_every_run_its_verdict_and_next_step(sweep, capsys, monkeypatch):
    monkeypatch.chdir(sweep.parent)
    assert main([str(sweep)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == [
        "run",
        "verdict",
        "conf",
        "steps",
        "train",
        "loss",
        "best",
        "eval",
        "(step)",
        "next",
    ]
    rows = lines[2:5]
    assert rows[0].startswith("sweep/0/output/v0-") and " failed " in rows[0] and rows[0].endswith("lr=1e-3")
    assert rows[1].startswith("sweep/1/output/v0-") and " converged " in rows[1]
    assert rows[2].startswith("sweep/2 ") and " failed " in rows[2]
    assert "training loss rose: 3.50 at step 1" in out  # the reasons follow the table
    assert "swift exited with code 2" in out
    assert "next: Lower the learning rate 100x (0.1 -> 1e-3)" in out


def test_json_is_one_object_per_run(sweep, capsys):
    assert main([str(sweep), "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["verdict"] for r in results] == ["failed", "converged", "failed"]
    for r in results:
        assert set(r) >= KEYS
        assert set(r["next"]) == {"text", "override"}
        assert 0 <= r["confidence"] <= 1 and r["reasons"]
    assert results[0]["figures"]["first_train_loss"] == 3.5
    assert results[0]["job_dir"] == str(sweep / "0")
    assert results[2]["path"] == str(sweep / "2") and results[2]["figures"]["steps"] is None


def test_a_run_folder_on_its_own(tmp_path, capsys):
    run = make_run(tmp_path, ([1, 2, 3, 4, 5, 6], [2.0, 1.8, 1.6, 1.4, 1.2, 1.0]))
    assert main([str(run), str(run), "--json"]) == 0  # named twice, classified once
    (result,) = json.loads(capsys.readouterr().out)
    assert result["path"] == str(run) and result["job_dir"] is None
    assert (
        result["verdict"] == "underfit" and result["next"]["override"] is None
    )  # no params: no epochs known


def test_a_missing_path_is_an_error_naming_it(tmp_path, capsys):
    missing = tmp_path / "no_such_sweep"
    assert main([str(missing)]) == 2
    captured = capsys.readouterr()
    assert str(missing) in captured.err and captured.out == ""


def test_a_folder_without_runs_is_an_error_and_the_others_are_still_shown(tmp_path, sweep, capsys):
    (tmp_path / "empty").mkdir()
    assert main([str(sweep), str(tmp_path / "empty"), "--json"]) == 2
    captured = capsys.readouterr()
    assert len(json.loads(captured.out)) == 3
    assert str(tmp_path / "empty") in captured.err and "holds no run" in captured.err


def test_thresholds_can_be_set_and_a_bad_one_is_refused(tmp_path, capsys):
    # a training loss that has levelled off, under an eval loss that turned up by 13% after its minimum
    steps = steps_of(100)
    run = make_run(tmp_path, (steps, decay(steps, 2.0, 0.5, 0.1)), ([20, 60, 100], [2.0, 1.5, 1.7]))
    assert main([str(run), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["verdict"] == "overfit"
    # a 13% rise no longer counts as overfitting: the levelled-off run has converged
    assert main([str(run), "--json", "--set", "overfit_rise=0.5"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["verdict"] == "converged"
    with pytest.raises(SystemExit) as stop:
        main([str(run), "--set", "no_such_threshold=1"])
    assert stop.value.code == 2 and "no_such_threshold" in capsys.readouterr().err


def test_python_dash_m_swiftops_classify(sweep):
    done = subprocess.run(
        [sys.executable, "-m", "swiftops.classify", str(sweep / "1"), "--json"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    (result,) = json.loads(done.stdout)
    assert result["verdict"] == "converged" and result["next"]["override"].startswith(
        "stages=[infer,export] run="
    )


def test_a_run_that_raises_costs_no_other_run_its_verdict(sweep, capsys, monkeypatch):
    """Each run is classified on its own: one that raises is an error on stderr (exit 2),
    after every other run's result."""
    import swiftops.classify as classify

    real = classify.classify_target

    def flaky(target, settings):
        if target.job_dir is not None and target.job_dir.name == "1":
            raise ZeroDivisionError("float division by zero")
        return real(target, settings)

    monkeypatch.setattr(classify, "classify_target", flaky)
    assert main([str(sweep), "--json"]) == 2
    captured = capsys.readouterr()
    verdicts = [r["verdict"] for r in json.loads(captured.out)]
    assert verdicts == ["failed", "failed"]  # jobs 0 and 2
    assert "could not be classified: ZeroDivisionError: float division by zero" in captured.err
    assert str(sweep / "1") in captured.err


def test_a_run_interrupted_before_logging_anything_has_no_verdict(tmp_path, capsys):
    job_dir = tmp_path / "sweep" / "0"
    (job_dir / "output").mkdir(parents=True)
    record = RunRecord(
        status="interrupted", job_dir=str(job_dir), argv=["swift", "sft"], output_dir=str(job_dir / "output")
    )
    write_record(record)
    assert main([str(job_dir)]) == 0
    out = capsys.readouterr().out
    assert "no verdict" in out and "interrupted before its first logged step" in out
    assert "failed" not in out
