"""The Hydra callback that closes every run and sweep: the comparison table (CSV + markdown on
the console) and the HTML report. Hydra reaches it even when jobs failed, because jobs never
raise (see swiftops.job)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger("swiftops")


class SweepSummary(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # every combination is checked before the first job starts
        from swiftops.sweep_check import check_sweep

        check_sweep(config)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        close_sweep(Path(config.hydra.sweep.dir), config)

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        close_sweep(Path(config.hydra.runtime.output_dir), config)


def close_sweep(folder: Path, config: DictConfig) -> Path | None:
    """Table and report for every run.json under folder; returns the report's path. Never
    raises: a broken report must not hide the table, nor the table the runs."""
    from swiftops.record import find_records, read_record
    from swiftops.summary import markdown_table, summary_csv, summary_rows

    paths = find_records(folder) if folder.is_dir() else []
    if not paths:
        return None  # dry runs and runs stopped by a config error leave no records
    records = [read_record(p) for p in paths]
    try:
        rows = summary_rows(records)
        (folder / "summary.csv").write_text(summary_csv(rows), encoding="utf-8")
        print(f"\n{markdown_table(rows)}\n", flush=True)
    except Exception:
        log.exception("could not write the summary table of %s", folder)
    report_cfg = config.get("report") or {}
    if not report_cfg.get("enabled", True):
        return None
    try:
        from swiftops.report import write_report

        path = write_report(folder, report_dir=report_cfg.get("dir", "reports"))
    except Exception:
        log.exception("could not write the report of %s", folder)
        return None
    print(f"report: {path}", flush=True)
    return path
