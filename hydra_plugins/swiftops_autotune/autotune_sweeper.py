"""The autotune sweeper: rounds of jobs through the configured launcher, each round planned by
swiftops.autotune from the verdicts of the last. Hydra, files and the launcher live here; the
planning is pure and lives in swiftops.autotune."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("swiftops")

# launchers that run one job at a time: branches would only queue up behind each other
SEQUENTIAL_LAUNCHERS = {"BasicLauncher"}


class AutotuneSweeper(Sweeper):
    """Start from the command line's config; then, round after round, run the next step of
    the verdicts so far, until a run converges or the budget is spent. Its knobs are the
    config's `autotune.*` (conf/config.yaml)."""

    def __init__(self) -> None:
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.launcher = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> list[Sequence[JobReturn]]:
        from swiftops.autotune import (
            Step,
            Tried,
            TuningPath,
            best_run,
            is_lineage,
            lineage_overrides,
            next_round,
            recommended_overrides,
        )

        assert self.config is not None and self.launcher is not None
        settings = self._settings(arguments)
        start = [a for a in arguments if not is_lineage(a)]
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")

        path = TuningPath(start=start, settings={**asdict(settings), "finish": list(settings.finish)})
        history: list[Tried] = []
        seen = {self._identity(start)}
        steps = [Step(tuple(start))]
        returns: list[Sequence[JobReturn]] = []
        job_num = 0
        try:
            while True:
                batch = [[*s.overrides, *lineage_overrides(s)] for s in steps]
                self.validate_batch_is_legal(batch)
                for step, num in zip(steps, range(job_num, job_num + len(steps)), strict=True):
                    log.info("autotune: job %d%s", num, f" {step.change} ({step.why})" if step.change else "")
                results = self.launcher.launch(batch, initial_job_idx=job_num)
                returns.append(results)
                nums = list(range(job_num, job_num + len(results)))
                job_num += len(results)
                path.rounds.append(nums)
                if self.config.get("dry_run"):
                    path.stopped = (
                        "dry run: the start's commands are printed; later runs follow from verdicts"
                    )
                    break
                history += [self._tried(r, s, n) for r, s, n in zip(results, steps, nums, strict=True)]
                path.write(sweep_dir)
                path.stopped = self._stop_reason(history, nums, len(path.rounds), settings)
                if path.stopped:
                    break
                room = settings.max_runs - len(history)
                steps = next_round(
                    history, seen, self._identity, branch=settings.branch, room=room, last_round=nums
                )
                if not steps:
                    path.stopped = _nothing_left(history)
                    break
        except KeyboardInterrupt:
            path.stopped = "interrupted (Ctrl-C): the jobs so far are recorded"
        best = best_run(history)
        if best is not None:
            path.best_job = best.job_num
            path.recommendation = recommended_overrides(best.overrides)
        path.write(sweep_dir)
        if best is not None and settings.finish and not path.stopped.startswith("interrupted"):
            returns += self._finish(best, settings.finish, job_num, path)
            path.write(sweep_dir)
        print(f"\nautotune: {len(history)} run(s); stopped: {path.stopped}", flush=True)
        if path.recommendation is not None:
            print(f"autotune: recommended: python -m swiftops {path.recommendation}".rstrip(), flush=True)
        return returns

    def _finish(self, best: Any, stages: Sequence[str], job_num: int, path: Any) -> list[Sequence[JobReturn]]:
        """One more job: the given stages on the converged run's best checkpoint."""
        from swiftops.autotune import Step, lineage_overrides, quote

        listed = f"stages=[{','.join(stages)}]"
        step = Step(
            (*best.overrides, listed, f"run={quote(best.job_dir or '')}", "ckpt=best"),
            parent=best.job_num,
            change=f"{listed} ckpt=best",
            why=f"job {best.job_num} converged: its best checkpoint goes on to {' and '.join(stages)}",
        )
        try:
            results = self.launcher.launch(
                [[*step.overrides, *lineage_overrides(step)]], initial_job_idx=job_num
            )
        except KeyboardInterrupt:
            path.stopped += "; the finishing stages were interrupted"
            return []
        path.finish_job = job_num
        return [results]

    # ---- the edges: config, records, identity

    def _settings(self, arguments: list[str]):
        from hydra.core.override_parser.overrides_parser import OverridesParser

        from swiftops.autotune import AutotuneSettings
        from swiftops.validate import ConfigError, refuse

        problems = []
        try:
            settings = AutotuneSettings.from_config(OmegaConf.to_container(self.config.get("autotune") or {}))
        except ValueError as exc:
            problems.append(str(exc))
            settings = None
        swept = [
            o.input_line for o in OverridesParser.create().parse_overrides(arguments) if o.is_sweep_override()
        ]
        if swept:
            problems.append(
                f"autotune starts from one config, but {swept} sweep several values; give one value each "
                "(or run the grid without +sweep=autotune)"
            )
        launcher = type(self.launcher).__name__
        if settings is not None and settings.branch and launcher in SEQUENTIAL_LAUNCHERS:
            problems.append(
                f"autotune.branch=true needs a launcher that runs jobs in parallel, but hydra/launcher is "
                f"{launcher} (one job at a time); use hydra/launcher=joblib, or autotune.branch=false"
            )
        if problems:
            refuse(ConfigError(problems))
        return settings

    def _identity(self, overrides: Sequence[str]) -> str:
        """What a config resolves to (so lr=0.001 and lr=1e-3 are one config), without the
        autotune section; from the overrides alone where it can't be composed."""
        from swiftops.autotune import plain_identity
        from swiftops.configs import job_config
        from swiftops.sweep_check import compose_job

        assert self.hydra_context is not None and self.config is not None
        try:  # composed as every job of a sweep is (resume, SLURM)
            cfg, _ = compose_job(self.hydra_context.config_loader, self.config, list(overrides), 0)
            plain = job_config(cfg)
        except Exception:  # composition errors surface when the round is validated
            return plain_identity(overrides)
        plain.pop("autotune", None)
        return json.dumps(plain, sort_keys=True, default=str)

    def _tried(self, result: JobReturn, step: Any, num: int):
        from swiftops.autotune import Tried
        from swiftops.record import FAILED, RunRecord, read_record

        job_dir = Path(str(result.hydra_cfg.hydra.runtime.output_dir)) if result.hydra_cfg else None
        try:
            _ = result.return_value  # raises what the job raised
            record = read_record(job_dir)
        except Exception as exc:
            log.error("autotune: job %d left no readable record: %s", num, exc)
            record = RunRecord(status=FAILED, job_dir=str(job_dir), argv=[], job_num=num, error=str(exc))
        tried = Tried.from_record(record, step.overrides)
        tried.job_num = num  # a record that could not be read has none
        return tried

    @staticmethod
    def _stop_reason(history, last_round: list[int], rounds: int, settings) -> str:
        converged = [t for t in history if t.job_num in last_round and t.verdict == "converged"]
        if converged:
            return f"converged: job {converged[0].job_num}"
        interrupted = [t for t in history if t.job_num in last_round and t.status == "interrupted"]
        if interrupted:
            return f"interrupted: job {interrupted[0].job_num} was stopped"
        if len(history) >= settings.max_runs:
            return f"the budget is spent: autotune.max_runs={settings.max_runs} runs, none converged"
        if rounds >= settings.max_rounds:
            return f"the budget is spent: autotune.max_rounds={settings.max_rounds} rounds, none converged"
        return ""


def _nothing_left(history) -> str:
    last = history[-1]
    what = f"job {last.job_num} {last.verdict or last.status}"
    if last.verdict == "failed" and not any(s.get("override") for s in last.steps):
        what += f" ({last.reason or 'no curve'}: fix the cause; no knob to change)"
    return f"no untried next step is left after {what}"
