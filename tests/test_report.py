"""The sweep report's structure, read back by parsing the HTML (stdlib html.parser): one row per
run, verdicts as in run.json, only the params that differ, no external URL, user strings
escaped, every run's command and folder, failed runs' errors. Sweeps are synthetic but REAL:
run.json records and TensorBoard event files (tests/report_fixtures.py)."""

from __future__ import annotations

import csv
import json
import math
import shlex
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from helpers_html import Node, header_names, parse, png_size, table_rows
from report_fixtures import SHAPES, FakeRun, grid_sweep, make_job, make_sweep

from swiftops.record import RunRecord, find_records, read_record, write_record
from swiftops.report.data import NoRecords, choose_best, load_runs, sweep_command, sweep_id
from swiftops.report.formats import param_texts
from swiftops.report.plots import Line, decimate, first_outside, y_limits
from swiftops.report.render import build_report, main, summary_paths, write_report
from swiftops.summary import summary_rows

XSS = "<script>alert(1)</script>"
# ---------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> Path:
    """Every shape once (converged ... no_run), lr differing, the system prompt an attack."""
    root = tmp_path_factory.mktemp("mixed") / "multirun" / "2026-11-24" / "10-00-00"
    runs = [FakeRun(shape, {"lr": 10.0 ** -(i + 1)}, seed=i) for i, shape in enumerate(SHAPES)]
    runs[0].params["system"] = XSS  # differs between runs: a table column
    return make_sweep(root, runs, overrides=["lr=0.1,0.01", "+sweep=demo", f"data.system={XSS}"])


@pytest.fixture(scope="module")
def mixed_report(mixed, tmp_path_factory) -> tuple[Path, Node, str]:
    out = write_report(mixed, report_dir=tmp_path_factory.mktemp("reports"))
    html = out.read_text(encoding="utf-8")
    return out, parse(html), html


def records_of(sweep: Path):
    return [read_record(p) for p in find_records(sweep)]


# ---------------------------------------------------------------------------------------------
# the page


def test_one_row_per_run_with_the_records_verdict_and_status(mixed, mixed_report):
    _, page, _ = mixed_report
    records = records_of(mixed)
    rows = table_rows(page)
    assert len(rows) == len(records) == len(SHAPES)
    for row, record in zip(rows, records, strict=True):
        assert row.attrs["data-job"] == str(record.job_num)
        assert row.attrs["data-status"] == record.status
        status_cell = row.find_all("td")[3]
        assert status_cell.text().strip() == record.status
        if record.verdict is not None:
            assert row.attrs["data-verdict"] == record.verdict
            badge = row.find("span", **{"class": f"badge v-{record.verdict}"})
            assert badge.text().startswith(record.verdict)
            assert f"{record.diagnosis['confidence']:.2f}" in badge.text()
    nan_row = rows[SHAPES.index("nan")]  # its loss ended in NaN: shown as such, not left blank
    assert [td.text() for td in nan_row.find_all("td") if "num" in td.classes()][2] == "nan"
    # the running job has no verdict in run.json: the report judges the curve so far, marked so
    running = next(r for r, rec in zip(rows, records, strict=True) if rec.status == "running")
    assert any("provisional" in s.classes() for s in running.find_all("span"))


def test_header_counts_and_best_run(mixed, mixed_report):
    _, page, _ = mixed_report
    records = records_of(mixed)
    assert page.find(id="run-count").text().strip() == str(len(records))
    counts = {
        s.attrs["data-verdict"]: int(s.attrs["data-count"])
        for s in page.find(id="verdict-counts").find_all("span")
    }
    runs = load_runs(mixed)  # the running job's verdict is provisional, judged from its curve
    assert counts == dict(Counter(r.verdict or "no verdict" for r in runs))
    assert all(
        run.verdict == record.verdict for run, record in zip(runs, records, strict=True) if record.verdict
    )
    statuses = page.find(id="status-counts").text()
    assert "running" in statuses and "interrupted" in statuses and "failed" in statuses
    # best = lowest best eval loss among runs that did not fail
    healthy = [r for r in records if r.verdict not in ("failed", None) and r.status != "failed"]
    best = min(healthy, key=lambda r: r.diagnosis["figures"]["best_eval_loss"])
    box = page.find(id="best")
    assert box.find("a").attrs["href"] == f"#run-job-{best.job_num}"
    assert "lowest best eval loss" in box.text()
    assert "python -m swiftops -m" in page.find(id="sweep-command").text()
    assert "sweep demo" in page.text()


def test_only_params_that_differ_are_columns(tmp_path):
    sweep = make_sweep(
        tmp_path / "grid",
        [
            FakeRun("converged", {"lr": lr, "lora_rank": r}, seed=i)
            for i, (lr, r) in enumerate([(1e-4, 4), (1e-3, 8)])
        ],
    )
    page = parse(build_report(sweep).html)
    params = [th.attrs["data-param"] for th in page.find_all("th", data_col="param")]
    assert params == ["lr", "lora_rank"]  # epochs, batch_size, model, dataset, system are the same
    rows = table_rows(page)
    assert [c.text() for c in rows[1].find_all("td")[1:3]] == ["0.001", "8"]


def test_no_external_url_and_one_inline_script(mixed_report):
    _, page, html = mixed_report
    for node in page.iter():
        for attr in ("src", "href", "action", "poster", "data"):
            value = node.attrs.get(attr)
            if value is not None:
                assert value.startswith(("data:", "#")), (node.tag, attr, value[:80])
        assert node.tag not in ("link", "iframe", "object", "embed", "base")
    scripts = page.find_all("script")
    assert len(scripts) == 1 and "src" not in scripts[0].attrs
    assert "http://" not in html and "https://" not in html
    csp = page.find("meta", http_equiv="Content-Security-Policy").attrs["content"]
    assert "default-src 'none'" in csp and "img-src data:" in csp


def test_user_strings_are_escaped(mixed_report):
    _, page, html = mixed_report
    assert XSS not in html  # nowhere raw: not in the table, the command, the params, the header
    assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 3
    script = page.find("script").text()
    assert "alert" not in script
    cell = next(
        td for td in table_rows(page)[0].find_all("td") if "param" in td.classes() and "alert" in td.text()
    )
    assert cell.text() == XSS  # shown as the text it is
    assert XSS in page.find(id="sweep-command").text()


def test_every_run_shows_its_command_and_folder_and_failed_runs_their_error(mixed, mixed_report):
    _, page, _ = mixed_report
    for record in records_of(mixed):
        article = page.find("article", id=f"run-job-{record.job_num}")
        assert article.find("pre", **{"class": "command"}).text() == shlex.join(record.argv)
        assert record.job_dir in article.text()
        if record.status != "completed" and record.error:
            assert article.find("pre", **{"class": "log"}).text() == record.error
            # the one line that says why, with where the whole log is
            why = article.find("p", **{"class": "why"}).text()
            assert summary_rows([record])[0]["error"] in why and record.log_path in why
        assert ("failed" in article.classes()) == (record.verdict == "failed" or record.status == "failed")


def test_images_are_inline_pngs_with_evidence_per_run(mixed, mixed_report):
    _, page, _ = mixed_report
    images = page.find_all("img")
    assert images and all(img.attrs["src"].startswith("data:image/png;base64,") for img in images)
    assert all(png_size(img.attrs["src"])[0] > 100 for img in images)
    overlay = page.find("img", id="overlay")
    assert png_size(overlay.attrs["src"])[0] >= 800
    for record in records_of(mixed):
        article = page.find("article", id=f"run-job-{record.job_num}")
        has_curves = record.run_dir is not None or record.status == "running"  # running: read from output/
        assert bool(article.find_all("img")) == has_curves, record.job_num
    # the diverged run is clipped out of the overlay, and the page says so
    assert f"job {SHAPES.index('diverged')}" in page.find(id="clipped").text()


def test_run_without_curves_keeps_its_row(tmp_path):
    sweep = make_sweep(
        tmp_path / "s", [FakeRun("converged", seed=1), FakeRun("converged", {"lr": 1e-3}, seed=2)]
    )
    moved = read_record(sweep / "1")
    moved.run_dir = str(tmp_path / "gone")  # the run folder was deleted since
    write_record(moved)
    (sweep / "2").mkdir()
    (sweep / "2" / "run.json").write_text("{not json", encoding="utf-8")
    page = parse(build_report(sweep).html)
    rows = table_rows(page)
    assert len(rows) == 3
    assert rows[1].find_all("td")[-3].text().strip() == "none"
    assert "gone" in rows[1].find_all("td")[-3].attrs["title"]
    assert rows[2].attrs["data-status"] == "unreadable"
    assert "could not be read" in page.find("article", id="run-job-2").find("pre", **{"class": "log"}).text()


def test_one_run_alone(tmp_path):
    job = tmp_path / "outputs" / "2026-11-24" / "09-30-00"
    make_job(job, FakeRun("overfit", seed=3))
    (job / ".hydra").mkdir()
    (job / ".hydra" / "overrides.yaml").write_text("- lr=1e-4\n- epochs=3\n", encoding="utf-8")
    out = write_report(job, report_dir=tmp_path / "reports")
    assert out == tmp_path / "reports" / "2026-11-24_09-30-00.html"
    page = parse(out.read_text(encoding="utf-8"))
    assert len(table_rows(page)) == 1
    assert table_rows(page)[0].attrs["data-verdict"] == read_record(job).verdict == "overfit"
    assert [th.attrs["data-param"] for th in page.find_all("th", data_col="param")] == [
        "lr",
        "lora_rank",
        "epochs",
    ]
    assert page.find(id="sweep-command").text() == "python -m swiftops lr=1e-4 epochs=3"
    assert page.find_all("img", id="heatmap") == []


def test_many_runs(tmp_path):
    runs = [
        FakeRun(SHAPES[i % 5], {"lr": 1e-5 * (i + 1)}, steps=40, eval_every=10, seed=i) for i in range(100)
    ]
    sweep = make_sweep(tmp_path / "many", runs)
    out = write_report(sweep, tmp_path / "many.html")
    page = parse(out.read_text(encoding="utf-8"))
    assert len(table_rows(page)) == 100
    assert len(page.find_all("article")) == 100
    assert out.stat().st_size < 5e6


def test_grid_heatmap_only_for_a_full_two_param_grid(tmp_path):
    grid = grid_sweep(tmp_path / "grid", [1e-4, 1e-3, 1e-1], [4, 8], steps=60)
    page = parse(build_report(grid).html)
    heat = page.find("img", id="heatmap")
    assert png_size(heat.attrs["src"])[0] > 200
    assert "lr × lora_rank" in page.find(id="grid").text()
    # one combination missing: not a grid
    partial = make_sweep(
        tmp_path / "partial",
        [
            FakeRun("converged", {"lr": lr, "lora_rank": r}, seed=i)
            for i, (lr, r) in enumerate([(1e-4, 4), (1e-3, 8), (1e-4, 8)])
        ],
    )
    assert parse(build_report(partial).html).find_all("img", id="heatmap") == []


def test_stage_results_and_their_placeholder(tmp_path, mixed_report):
    _, page, _ = mixed_report
    assert page.find(id="no-stages")
    stages = {
        "sft": {"status": "completed"},
        "infer": {
            "status": "completed",
            "score": 45.0,
            "scorer": "exam",
            "n": 10,
            "result_path": "/x/infer/result.jsonl",
            "baseline": {"score": 12.5},
        },
        "export": {"status": "failed", "error": "Traceback\nOSError: disk <full>"},
    }
    sweep = make_sweep(tmp_path / "st", [FakeRun("converged", stages=stages)])
    page = parse(build_report(sweep).html)
    rows = page.find("table", id="stage-table").find("tbody").find_all("tr")
    assert [r.attrs["data-stage"] for r in rows] == ["infer", "export"]
    infer = rows[0].text()
    assert "45" in infer and "exam" in infer and "12.5" in infer and "/x/infer/result.jsonl" in infer
    assert "OSError: disk <full>" in rows[1].text() and "failed" in rows[1].text()


# ---------------------------------------------------------------------------------------------
# files and CLI


def test_summary_files_beside_the_report(mixed, mixed_report):
    out, _, _ = mixed_report
    csv_path, json_path = summary_paths(out)
    assert csv_path.name == "2026-11-24_10-00-00.summary.csv"
    rows = list(csv.DictReader(csv_path.open(encoding="utf-8")))
    records = records_of(mixed)
    assert [r["verdict"] for r in rows if r["status"] != "running"] == [
        r.verdict for r in records if r.status != "running"
    ]

    def strict(name):
        raise ValueError(f"{name} in summary.json")

    summary = json.loads(json_path.read_text(encoding="utf-8"), parse_constant=strict)
    assert summary["runs"] == len(records) == len(summary["rows"])
    assert summary["params"] == ["lr", "system"]
    assert summary["best"]["job"] in {r.job_num for r in records}


def test_cli_writes_and_prints_the_path_last(mixed, tmp_path, capsys):
    out = tmp_path / "sub" / "r.html"
    assert main([str(mixed), "-o", str(out)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"report: {out}"
    assert out.is_file() and summary_paths(out)[0].is_file()
    assert main([str(tmp_path / "empty")]) == 2
    assert "holds no run.json" in capsys.readouterr().err
    with pytest.raises(NoRecords):
        write_report(tmp_path / "empty")


def test_python_dash_m_regenerates_from_disk(mixed, tmp_path):
    """`python -m swiftops.report SWEEP_DIR`, from another working dir: reports/<sweep id>.html there."""
    done = subprocess.run(
        [sys.executable, "-m", "swiftops.report", str(mixed)], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    expected = Path("reports") / "2026-11-24_10-00-00.html"
    assert done.stdout.strip().splitlines()[-1] == f"report: {expected}"
    assert len(table_rows(parse((tmp_path / expected).read_text(encoding="utf-8")))) == len(SHAPES)


# ---------------------------------------------------------------------------------------------
# the pure parts


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("multirun/2026-11-24/10-00-00", "2026-11-24_10-00-00"),
        ("outputs/2026-11-24/10-00-00", "2026-11-24_10-00-00"),
        ("multirun/2026-11-24/10-00-00/3", "2026-11-24_10-00-00_3"),
        ("sweeps_out/my lr sweep", "my_lr_sweep"),
        ("runs/10-00-00", "runs_10-00-00"),
    ],
)
def test_sweep_id(tmp_path, path, expected):
    assert sweep_id(tmp_path / path) == expected


def test_sweep_command_rebuilt_from_overrides_without_hydra_files(tmp_path):
    sweep = make_sweep(tmp_path / "s", [FakeRun(params={"lr": 0.1}), FakeRun(params={"lr": 0.01}, seed=1)])
    command, source = sweep_command(sweep, records_of(sweep))
    assert command == "python -m swiftops -m lr=0.1,0.01" and source == "the jobs' overrides"


def test_best_run_skips_failed_runs_even_with_a_lower_eval_loss(tmp_path):
    sweep = make_sweep(
        tmp_path / "s",
        [
            FakeRun("converged", seed=1),
            FakeRun("overfit", {"lr": 1e-3}, seed=2),
            FakeRun("crashed", {"lr": 1}, seed=3),
        ],
    )
    runs = load_runs(sweep)
    crashed = runs[2]
    crashed.diagnosis["figures"]["best_eval_loss"] = 0.001  # lowest of all, but the run failed
    best = choose_best(runs)
    assert best.run is min(runs[:2], key=lambda r: r.figures["best_eval_loss"])
    assert "among 2 runs that did not fail" in best.why
    assert choose_best([crashed]).run is None
    assert choose_best([crashed]).why == "none: every run failed"


def test_y_limits_ignore_failed_runs_and_mark_them_clipped():
    steps = np.arange(1, 101)
    healthy = Line("job 0", steps, 0.5 + 2 * np.exp(-steps / 20))
    spiky = Line("job 1", steps, np.where(steps == 50, 40.0, 0.6 + 2 * np.exp(-steps / 30)))
    diverged = Line("job 2", steps, np.exp(steps / 10.0), failed=True)
    limits = y_limits([healthy, spiky, diverged])
    assert not limits.log and limits.lo < 0.55 and 2.5 < limits.hi < 2.8  # the spike and the blow-up left out
    assert first_outside(diverged, limits) == int(steps[np.argmax(diverged.values > limits.hi)])
    assert first_outside(healthy, limits) is None and first_outside(spiky, limits) == 50
    short = Line("job 3", steps[:8], np.array([4.5, 5.6, 5.0, 4.0, 3.8, 3.6, 3.5, 3.4]))  # a real peak
    assert y_limits([short]).hi > 5.6 and first_outside(short, y_limits([short])) is None
    wide = y_limits([Line("a", steps, np.geomspace(10, 0.1, 100))])
    assert wide.log and wide.lo < 0.1 < 10 < wide.hi
    only_failed = y_limits([Line("a", steps, np.where(steps > 80, np.nan, 1.0 * steps), failed=True)])
    assert only_failed is not None and math.isfinite(only_failed.hi)
    assert y_limits([Line("a", steps, np.full(100, np.nan))]) is None


def test_decimate_keeps_extremes_and_nan_gaps():
    rng = np.random.default_rng(0)
    steps = np.arange(1, 50_001)
    values = rng.standard_normal(len(steps))
    values[12_345] = 99.0
    values[40_000] = -99.0
    values[30_000:30_010] = np.nan
    s, v = decimate(steps, values, 600)
    assert len(s) <= 900 and np.all(np.diff(s) > 0)
    assert s[0] == 1 and s[-1] == 50_000
    assert 99.0 in v and -99.0 in v
    assert np.isnan(v).any() and 30_001 in s
    short_s, _ = decimate(steps[:100], values[:100], 600)
    assert len(short_s) == 100


def test_an_autotune_sweep_opens_with_its_path_and_its_cost(tmp_path):
    sweep = make_sweep(
        tmp_path / "s",
        [FakeRun("diverged", {"lr": 0.1}, seed=1), FakeRun("converged", {"lr": 1e-3}, seed=2)],
    )
    child = read_record(sweep / "1")
    child.lineage = {"parent": 0, "change": "lr=1e-3", "why": "job 0 failed: Lower the learning rate 100x"}
    write_record(child)
    (sweep / "autotune.json").write_text(
        json.dumps({"stopped": "converged: job 1", "best_job": 1, "recommendation": "lr=1e-3"}),
        encoding="utf-8",
    )
    report = build_report(sweep)
    page = parse(report.html)
    section = page.find("section", id="autotune")
    assert section is not None
    assert "Stopped: converged: job 1." in section.text()
    assert "python -m swiftops lr=1e-3" in section.text()
    rows = section.find("tbody").find_all("tr")
    assert [r.find_all("td")[2].text().strip() for r in rows] == ["", "lr=1e-3"]
    assert rows[0].find_all("td")[-1].text().strip() == "job 1"  # job 0 led to job 1
    assert rows[1].attrs.get("class") == "is-best"
    path = report.summary["autotune"]
    assert path["best_job"] == 1 and path["swift_seconds"] == 12.5 + 13.5
    assert [p["from"] for p in path["path"]] == ["start", "job 0"]


def test_a_plain_sweep_has_no_path_and_a_watchdog_stop_is_marked(tmp_path):
    sweep = make_sweep(tmp_path / "s", [FakeRun("nan", {"lr": 0.1}, seed=1), FakeRun("converged", seed=2)])
    stopped = read_record(sweep / "0")
    stopped.stopped_by = "watchdog"
    write_record(stopped)
    report = build_report(sweep)
    page = parse(report.html)
    assert not page.find_all("section", id="autotune") and report.summary["autotune"] is None
    assert "stopped by the watchdog" in page.find("article", id="run-job-0").find("h3").text()
    assert "stopped by" not in page.find("article", id="run-job-1").find("h3").text()


def test_the_path_counts_a_finishing_jobs_stages_not_the_training_it_carries(tmp_path):
    from swiftops.report.data import RunView, tuning_path

    run_dir = str(tmp_path / "0" / "output" / "v0-20260101-000000")
    common = {"status": "completed", "argv": [], "duration_s": 20.0, "run_dir": run_dir}
    trained = RunRecord(job_dir=str(tmp_path / "0"), job_num=0, stages={"sft": {}}, **common)
    finish = RunRecord(
        job_dir=str(tmp_path / "1"),
        job_num=1,
        lineage={"parent": 0, "change": "stages=[infer,export] ckpt=best"},
        stages={"sft": {}, "infer": {"duration_s": 9.0}, "export": {"duration_s": 4.0}},
        **common,
    )
    path = tuning_path([RunView(trained, diagnosis={"figures": {"steps": 36}}), RunView(finish)], None)
    assert [row["swift_seconds"] for row in path.rows] == [20.0, 13.0]
    assert path.swift_seconds == 33.0 and path.steps == 36


def test_a_path_column_shows_what_tells_its_runs_apart():
    data = "/root/.cache/swiftops/tiny-v1-tf5/data"
    rows = [
        {"dataset": [f"{data}/zh_100.jsonl"], "lr": 5e-05, "model": "/models/qwen"},
        {
            "dataset": [f"{data}/zh_1000.jsonl", "AI-ModelScope/alpaca#500"],
            "lr": 0.1,
            "model": "/models/qwen",
        },
    ]
    texts = param_texts(rows, ["dataset", "lr", "model"])
    assert [t["dataset"] for t in texts] == ["zh_100.jsonl", "zh_1000.jsonl, AI-ModelScope/alpaca#500"]
    assert [t["lr"] for t in texts] == ["5e-05", "0.1"]
    assert [t["model"] for t in texts] == ["qwen", "qwen"]  # one path in every row: its name


def test_exit_and_curves_columns_only_when_they_tell_runs_apart(tmp_path):
    same = make_sweep(
        tmp_path / "a", [FakeRun("converged", seed=1), FakeRun("overfit", {"lr": 1e-3}, seed=2)]
    )
    assert not {"exit", "curves"} & set(header_names(parse(build_report(same).html)))
    mixed = make_sweep(
        tmp_path / "b", [FakeRun("converged", seed=1), FakeRun("no_run", {"lr": 1e-3}, seed=2)]
    )
    assert {"exit", "curves"} <= set(header_names(parse(build_report(mixed).html)))
