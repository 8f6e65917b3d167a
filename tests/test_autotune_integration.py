"""`python -m swiftops +sweep=autotune experiment=tutorial_tiny_run1`, for real: from the
tutorial's failing run 1 (lr 0.1) the real swift, on the tiny model on CPU, is led to a
converged run by the verdicts alone (about 4 min on 2 cores), whose best checkpoint then goes to
infer and export; the report draws the path.

On either data source (the tutorial's zh files where ../shared holds them, else the built-in
set) the path starts the same way, the tutorial's: lr 0.1 fails, lr 1e-3 underfits in 1 epoch
and more epochs follow. How many it takes to converge is the data's; the budget is 6 runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from swiftops.record import find_records, read_record

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_autotune_from_the_tutorials_failing_run_reaches_a_converged_one(tmp_path):
    env = dict(os.environ)
    env.pop("SWIFTOPS_TUTORIAL_DATA", None)
    sweep, reports = tmp_path / "sweep", tmp_path / "reports"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "swiftops",
            "+sweep=autotune",
            "experiment=tutorial_tiny_run1",
            "autotune.max_runs=6",
            "autotune.finish=[infer,export]",
            f"hydra.sweep.dir={sweep}",
            f"report.dir={reports}",
            "progress=false",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-5000:]
    records = [read_record(p) for p in find_records(sweep)]
    *records, finish = records  # the last job: infer and export of the converged run
    path = [(r.params["lr"], r.params["epochs"], r.verdict) for r in records]
    why = "\n".join(f"{p}: {r.diagnosis['reasons'][:2]}" for p, r in zip(path, records, strict=True))
    assert path[:2] == [(0.1, 1, "failed"), (0.001, 1, "underfit")], why
    assert records[-1].verdict == "converged", why
    assert all(v != "converged" for _, _, v in path[:-1]), why  # it stopped at the first
    assert len(set((lr, ep) for lr, ep, _ in path)) == len(path)  # no config twice
    by_num = {r.job_num: r for r in records}
    for child in records[1:]:
        parent = by_num[child.lineage["parent"]]
        assert parent.job_num < child.job_num
        assert child.lineage["why"].startswith(f"job {parent.job_num} {parent.verdict}")
    decisions = json.loads((sweep / "autotune.json").read_text())
    assert decisions["stopped"] == f"converged: job {records[-1].job_num}"
    assert decisions["recommendation"].startswith("experiment=tutorial_tiny_run1")
    assert "+sweep" not in decisions["recommendation"]
    assert decisions["finish_job"] == finish.job_num
    assert finish.lineage["parent"] == records[-1].job_num
    assert finish.stages["infer"]["status"] == finish.stages["export"]["status"] == "completed"
    assert finish.stages["infer"]["checkpoint"] == records[-1].best_checkpoint
    html = next(reports.glob("*.html")).read_text()
    assert 'id="autotune-table"' in html and decisions["stopped"] in html
