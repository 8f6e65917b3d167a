"""`python -m swiftops +sweep=autotune` end to end with a stand-in swift whose curves are
scripted per flag (FAKE_SWIFT_SHAPES): the stop rules, no repeats, the budget, branching,
a failing job, Ctrl-C mid-round, the finishing stages, parent links in run.json, the report."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import start_interruptible

from swiftops.record import find_records, read_record

pytestmark = pytest.mark.sweep

# the tutorial's path: lr 0.1 fails, lr 1e-3 underfits in 1 epoch, 3 epochs converge
TUTORIAL_SHAPES = [
    [{"learning_rate": 0.1}, "rising"],
    [{"num_train_epochs": 1}, "still_falling"],
    [{}, "converged"],
]


@pytest.fixture
def inputs(stand_in_files) -> list[str]:
    model, data = stand_in_files
    return [f"model.id={model}", f"data.dataset=[{data}]", f"data.test_dataset={data}", "progress=false"]


def autotune_cmd(tmp_path, fake_swift, inputs, *overrides) -> list[str]:
    return [
        sys.executable,
        "-m",
        "swiftops",
        "+sweep=autotune",
        *inputs,
        f"swift_bin={fake_swift}",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        f"report.dir={tmp_path / 'reports'}",
        *overrides,
    ]


def run_autotune(tmp_path, fake_swift, inputs, shapes, *overrides, env=None):
    env = dict(os.environ, FAKE_SWIFT_SHAPES=json.dumps(shapes), **(env or {}))
    return subprocess.run(
        autotune_cmd(tmp_path, fake_swift, inputs, *overrides),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def records(tmp_path):
    return [read_record(p) for p in find_records(tmp_path / "sweep")]


def decisions(tmp_path):
    return json.loads((tmp_path / "sweep" / "autotune.json").read_text())


def test_from_a_failing_run_it_follows_the_verdicts_to_a_converged_one(tmp_path, fake_swift, inputs):
    done = run_autotune(tmp_path, fake_swift, inputs, TUTORIAL_SHAPES, "lr=0.1", "epochs=1")
    assert done.returncode == 0, done.stderr
    runs = records(tmp_path)
    assert [r.verdict for r in runs] == ["failed", "underfit", "converged"]
    assert [r.params["lr"] for r in runs] == [0.1, 0.001, 0.001]
    assert [r.params["epochs"] for r in runs] == [1, 1, 3]
    assert runs[0].lineage is None
    assert runs[1].lineage["parent"] == 0 and runs[1].lineage["change"] == "lr=1e-3"
    assert runs[1].lineage["why"].startswith("job 0 failed: Lower the learning rate 100x")
    assert (
        runs[2].lineage
        == {
            "parent": 1,
            "change": "epochs=3",
            "why": runs[2].lineage["why"],
        }
        and "job 1 underfit" in runs[2].lineage["why"]
    )
    # the lineage is not an override a person typed
    assert not any(o.startswith("autotune.") for r in runs for o in r.overrides)
    path = decisions(tmp_path)
    assert path["rounds"] == [[0], [1], [2]]
    assert path["stopped"] == "converged: job 2"
    assert path["best_job"] == 2
    assert "+sweep" not in path["recommendation"] and "lr=1e-3" in path["recommendation"]
    assert "autotune: recommended: python -m swiftops" in done.stdout
    html = next((tmp_path / "reports").glob("*.html")).read_text()
    assert 'id="autotune"' in html and "Stopped: converged: job 2" in html
    summary = json.loads(next((tmp_path / "reports").glob("*.summary.json")).read_text())
    assert [row["change"] for row in summary["autotune"]["path"]] == [None, "lr=1e-3", "epochs=3"]
    assert summary["autotune"]["steps"] == 10 + 10 + 30


def test_the_budget_ends_it_and_says_so(tmp_path, fake_swift, inputs):
    done = run_autotune(tmp_path, fake_swift, inputs, [[{}, "still_falling"]], "autotune.max_runs=3")
    assert done.returncode == 0, done.stderr
    assert [r.params["epochs"] for r in records(tmp_path)] == [3, 9, 27]
    assert decisions(tmp_path)["stopped"].startswith("the budget is spent: autotune.max_runs=3")
    assert "stopped: the budget is spent" in done.stdout


def test_rounds_are_a_budget_too(tmp_path, fake_swift, inputs):
    done = run_autotune(tmp_path, fake_swift, inputs, [[{}, "still_falling"]], "autotune.max_rounds=2")
    assert done.returncode == 0, done.stderr
    assert len(records(tmp_path)) == 2
    assert "autotune.max_rounds=2" in decisions(tmp_path)["stopped"]


def test_it_never_runs_a_config_twice_and_ends_when_no_step_is_left(tmp_path, fake_swift, inputs):
    """1 epoch underfits, 3 overfit (whose best epoch is 1 again): the alternatives are taken,
    then nothing untried is left."""
    shapes = [[{"num_train_epochs": 1}, "still_falling"], [{}, "overfit"]]
    done = run_autotune(tmp_path, fake_swift, inputs, shapes, "epochs=1", "lr=1e-3", "autotune.max_runs=20")
    assert done.returncode == 0, done.stderr
    runs = records(tmp_path)
    configs = [(r.params["lr"], r.params["epochs"]) for r in runs]
    assert len(configs) == len(set(configs)), configs
    assert len(runs) < 20
    assert decisions(tmp_path)["stopped"].startswith("no untried next step is left")


def test_a_crashing_job_ends_the_path_with_the_reason(tmp_path, fake_swift, inputs):
    shapes = [[{"learning_rate": 0.1}, "rising"], [{}, "crash"]]
    # 1 epoch: 10 points, too few for the watchdog to stop the rise (it races the stand-in otherwise)
    done = run_autotune(tmp_path, fake_swift, inputs, shapes, "lr=0.1", "epochs=1")
    assert done.returncode == 0, done.stderr
    runs = records(tmp_path)
    assert [r.status for r in runs][:2] == ["completed", "failed"]
    stopped = decisions(tmp_path)["stopped"]
    assert "failed" in stopped, stopped
    assert next((tmp_path / "reports").glob("*.html")).is_file()


def test_branching_runs_both_fitting_steps_side_by_side(tmp_path, fake_swift, inputs):
    # still falling at a tiny lr: both more epochs and a 10x higher lr fit
    shapes = [[{"num_train_epochs": 1, "learning_rate": 5e-5}, "still_falling"], [{}, "converged"]]
    done = run_autotune(
        tmp_path,
        fake_swift,
        inputs,
        shapes,
        "lr=5e-5",
        "epochs=1",
        "autotune.branch=true",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
    )
    assert done.returncode == 0, done.stderr
    path = decisions(tmp_path)
    assert path["rounds"] == [[0], [1, 2]]
    changes = sorted(r.lineage["change"] for r in records(tmp_path) if r.lineage)
    assert changes == ["epochs=3", "lr=5e-4"]
    assert path["stopped"].startswith("converged")


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        (["autotune.max_runs=0"], "autotune.max_runs = 0"),
        (["autotune.finish=[deploy]"], "autotune.finish = ['deploy']"),
        (["autotune.branch=true"], "autotune.branch=true needs a launcher that runs jobs in parallel"),
        (["lr=1e-1,5e-5"], "autotune starts from one config"),
        (["lr=-1"], "lr"),
    ],
)
def test_bad_input_is_refused_before_any_run(tmp_path, fake_swift, inputs, overrides, named):
    done = run_autotune(tmp_path, fake_swift, inputs, [[{}, "converged"]], *overrides)
    assert done.returncode == 2, done.stdout + done.stderr
    assert named in done.stderr
    assert records(tmp_path) == []


def test_an_unknown_start_experiment_is_refused_before_any_run(tmp_path, fake_swift, inputs):
    done = run_autotune(tmp_path, fake_swift, inputs, [[{}, "converged"]], "experiment=no_such_run")
    assert done.returncode != 0
    assert "no_such_run" in done.stderr and "tutorial_tiny_run1" in done.stderr
    assert records(tmp_path) == []


def test_the_finishing_stages_run_on_the_converged_runs_best_checkpoint(tmp_path, fake_swift, inputs):
    done = run_autotune(
        tmp_path, fake_swift, inputs, TUTORIAL_SHAPES, "lr=1e-3", "epochs=1", "autotune.finish=[infer,export]"
    )
    assert done.returncode == 0, done.stderr
    runs = records(tmp_path)
    assert [r.verdict for r in runs[:2]] == ["underfit", "converged"]
    finish = runs[2]
    assert finish.lineage["parent"] == 1 and "stages=[infer,export]" in finish.lineage["change"]
    assert finish.stages["infer"]["status"] == "completed"
    assert finish.stages["export"]["status"] == "completed"
    assert finish.stages["infer"]["checkpoint"] == runs[1].best_checkpoint
    assert decisions(tmp_path)["finish_job"] == 2


def test_ctrl_c_mid_round_stops_the_job_and_still_writes_the_path_and_report(tmp_path, fake_swift, inputs):
    env = dict(os.environ, FAKE_SWIFT_SHAPES=json.dumps(TUTORIAL_SHAPES), FAKE_SWIFT_STEP_SECONDS="0.5")
    cmd = autotune_cmd(tmp_path, fake_swift, inputs, "lr=0.1", "epochs=1")
    proc = start_interruptible(
        cmd,
        env=env,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not list((tmp_path / "sweep").glob("1/output/v*/logging.jsonl")) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    runs = records(tmp_path)
    assert [r.status for r in runs] == ["completed", "interrupted"], out
    assert decisions(tmp_path)["stopped"].startswith("interrupted"), out
    assert (tmp_path / "sweep" / "summary.csv").is_file(), out
    assert next((tmp_path / "reports").glob("*.html")).is_file(), out
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(fake_swift) not in ps


def test_python_m_swiftops_report_rebuilds_the_path_from_disk(tmp_path, fake_swift, inputs):
    done = run_autotune(
        tmp_path, fake_swift, inputs, TUTORIAL_SHAPES, "lr=0.1", "epochs=1", "report.enabled=false"
    )
    assert done.returncode == 0, done.stderr
    out = tmp_path / "again"
    rebuilt = subprocess.run(
        [sys.executable, "-m", "swiftops.report", str(tmp_path / "sweep"), "--report-dir", str(out)],
        capture_output=True,
        text=True,
    )
    assert rebuilt.returncode == 0, rebuilt.stderr
    html = Path(next(out.glob("*.html"))).read_text()
    assert 'id="autotune-table"' in html and "lr=1e-3" in html and "converged: job 2" in html


def test_a_dry_run_prints_the_start_and_plans_nothing_further(tmp_path, fake_swift, inputs):
    done = run_autotune(tmp_path, fake_swift, inputs, TUTORIAL_SHAPES, "lr=0.1", "dry_run=true")
    assert done.returncode == 0, done.stderr
    assert "swift sft" in done.stdout and "--learning_rate 0.1" in done.stdout
    assert records(tmp_path) == []
    assert decisions(tmp_path)["stopped"].startswith("dry run")
