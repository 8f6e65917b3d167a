"""Run diagnosis on the labelled dev corpus: swiftops' four verdicts against the hand labels,
side by side with the peer tool trainproof (a rule-based training-log linter).

    python benchmarks/diagnosis.py                        # ../shared/diagnosis_corpus/dev
    python benchmarks/diagnosis.py --corpus PATH --json   # another labelled folder, as JSON
    python benchmarks/diagnosis.py --runs multirun/X ...  # also: each run's verdict with every threshold
                                                          #   x0.75 / x1.33 (a knife-edge shows as a flip)

The corpus folder holds labels.csv (case, verdict, ambiguous, alt, rationale) and runs/<case>/
with one log each (trainer_state.json, LLaMA-Factory's trainer_log.jsonl or ms-swift's
logging.jsonl); see ../shared/diagnosis_corpus/README.md. Never point it at sealed/.

Agreement: strict = the prediction equals the label's verdict; lenient = it equals the verdict,
or on an ambiguous case one of the `|`-separated alt labels. The 3-way split (failed / overfit /
fine, fine = underfit or converged) is the most trainproof can say, so both tools are scored on
it too, the labels and their alts mapped the same way. swiftops classifies each case folder
in-process (swiftops.classify); a crash counts as the verdict "crash". trainproof runs
in-process on each case's log file through trainproof.epoch.check_epoch, which is what
`trainproof epoch LOGFILE --json` runs.

Also printed: per verdict, precision and recall against the labels (strict), for both tools on the
3-way split; "wrong direction" advice (a run labelled failed whose advice raises the lr while its
training loss ended above its start, or one labelled underfit whose advice lowers the lr; target 0);
every headline figure on the corpus README's two fixed halves (tuning: the first byte of
sha256(case) even; check: odd), so a change that lifts one half only shows as fitting; and the time
to diagnose 100 runs of 20k steps each (target <= 5 s).

trainproof 0.22.0 findings (trainproof/epoch.py) and the 3-way verdict this script reads from them:

    failed   TP-NAN (NaN/Inf loss), TP-NAN-GRAD (NaN/Inf gradient norm), TP-ZERO-LOSS (loss 0.0
             on every step), TP-ZERO-LOSS-ONSET (loss positive, then 0.0 to the end), TP-FLAT
             (loss curve flat), TP-DIVERGE (last loss > 1.5x the minimum), TP-DEAD-RUN (loss
             never improved 5%), TP-ZERO-GRAD (gradient norm 0.0 throughout), TP-ZERO-LR
             (learning rate 0 for the whole run): every FAIL-level finding about the run
    overfit  TP-OVERFIT (eval loss 1.2x over its minimum over the last 3 evals while train loss
             fell); a run with a failed finding as well is failed
    fine     none of the above: TP-PASS, TP-NOT-CHECKED and the WARN/INFO findings that say
             nothing about learning: TP-GRAD-SPIKE (gradient norm > 10x its median),
             TP-ZERO-LR-PARTIAL, TP-STEP-CLIFF, TP-LOADER-BOUND, TP-THROUGHPUT, TP-GPU-UTIL.
             TP-GRAD-SPIKE is the nearest thing to "exploding" but only a warning, and it fires
             on early-step spikes of healthy runs; the output also gives the 3-way scores with
             it counted as failed.
    unreadable  TP-NO-RECORDS / TP-NO-LOSS (trainproof read no records, or no loss column), an
             exception from trainproof, or no known log file: counted as fine, and reported.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

VERDICTS = ("failed", "underfit", "overfit", "converged")
THREE_WAY = ("failed", "overfit", "fine")
CRASH = "crash"
LOG_NAMES = ("trainer_state.json", "trainer_log.jsonl", "logging.jsonl")
DEFAULT_CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "diagnosis_corpus" / "dev"

TP_FAILED = frozenset(
    {
        "TP-NAN",
        "TP-NAN-GRAD",
        "TP-ZERO-LOSS",
        "TP-ZERO-LOSS-ONSET",
        "TP-FLAT",
        "TP-DIVERGE",
        "TP-DEAD-RUN",
        "TP-ZERO-GRAD",
        "TP-ZERO-LR",
    }
)
TP_OVERFIT = frozenset({"TP-OVERFIT"})
TP_UNREADABLE = frozenset({"TP-NO-RECORDS", "TP-NO-LOSS"})
TP_SPIKE = "TP-GRAD-SPIKE"

# confidence buckets [lo, hi); the last one is closed: [0.9, 1.0]
BUCKETS = ((0.0, 0.5), (0.5, 0.65), (0.65, 0.8), (0.8, 0.9), (0.9, 1.0))
CONFIDENT = 0.8


@dataclass(frozen=True)
class Case:
    name: str
    verdict: str
    ambiguous: bool
    alts: tuple[str, ...]
    run_dir: Path

    @property
    def half(self) -> str:
        """The corpus README's fixed split: the first byte of sha256(case name), even = tuning."""
        return "check" if hashlib.sha256(self.name.encode()).digest()[0] % 2 else "tuning"


# ---- the corpus ----


def read_labels(corpus: Path) -> list[Case]:
    with (corpus / "labels.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [
        Case(
            name=row["case"],
            verdict=row["verdict"].strip(),
            ambiguous=row["ambiguous"].strip().lower() == "yes",
            alts=tuple(a.strip() for a in (row["alt"] or "").split("|") if a.strip()),
            run_dir=corpus / "runs" / row["case"],
        )
        for row in rows
    ]


def log_file(run_dir: Path) -> Path | None:
    """The case's training log: the first of LOG_NAMES present in its folder."""
    for name in LOG_NAMES:
        if (run_dir / name).is_file():
            return run_dir / name
    return None


# ---- scoring (pure) ----


def three_way(verdict: str) -> str:
    """failed -> failed, overfit -> overfit, underfit / converged -> fine; crash stays crash."""
    if verdict in ("underfit", "converged"):
        return "fine"
    return verdict


def accepted(case: Case, *, lenient: bool, three: bool) -> set[str]:
    """The predictions that agree with the case's label."""
    labels = {case.verdict}
    if lenient and case.ambiguous:
        labels |= set(case.alts)
    return {three_way(v) for v in labels} if three else labels


def score(
    preds: list[str],
    cases: list[Case],
    *,
    lenient: bool = False,
    three: bool = False,
    unambiguous_only: bool = False,
) -> tuple[int, int]:
    """(agreeing, counted) over the cases; 3-way predictions are already mapped."""
    pairs = [(p, c) for p, c in zip(preds, cases, strict=True) if not (unambiguous_only and c.ambiguous)]
    right = sum(p in accepted(c, lenient=lenient, three=three) for p, c in pairs)
    return right, len(pairs)


def confusion(labels: list[str], preds: list[str], rows: tuple[str, ...]) -> dict[str, dict[str, int]]:
    """Counts of label (row) x prediction (column); columns are rows plus any other prediction
    seen (crash), in that order."""
    cols = list(rows) + sorted({p for p in preds if p not in rows})
    counts = Counter(zip(labels, preds, strict=True))
    return {r: {c: counts[(r, c)] for c in cols} for r in rows}


def precision_recall(labels: list[str], preds: list[str], verdicts: tuple[str, ...]) -> dict[str, Any]:
    """Per verdict: precision (of the runs given it, how many carry that label) and recall (of the runs
    labelled it, how many were given it), strict."""
    out = {}
    for v in verdicts:
        given = [lab for lab, p in zip(labels, preds, strict=True) if p == v]
        labelled = [p for lab, p in zip(labels, preds, strict=True) if lab == v]
        out[v] = {
            "precision": fraction(sum(lab == v for lab in given), len(given)),
            "recall": fraction(sum(p == v for p in labelled), len(labelled)),
        }
    return out


def lr_direction(next_text: str) -> int:
    """+1 when the advice raises the learning rate, -1 when it lowers it, else 0."""
    if next_text.startswith("Raise the learning rate"):
        return 1
    if next_text.startswith("Lower the learning rate"):
        return -1
    return 0


def wrong_direction(case: Case, result: dict[str, Any]) -> bool:
    """Advice that sends the lr the wrong way: raised for a failed run whose loss ended above its
    start, lowered for an underfit one."""
    direction = lr_direction(result.get("next_text") or "")
    if case.verdict == "failed":
        return direction > 0 and bool(result.get("ended_higher"))
    if case.verdict == "underfit":
        return direction < 0
    return False


def bucket_of(confidence: float) -> int:
    for i, (lo, hi) in enumerate(BUCKETS):
        if lo <= confidence < hi:
            return i
    return len(BUCKETS) - 1  # 1.0 (and anything above) in the closed last bucket


def calibration(confidences: list[float | None], right: list[bool]) -> dict[str, Any]:
    """Runs and lenient accuracy per confidence bucket, the share right at confidence >= 0.8 and
    how many wrong verdicts came with confidence < 0.8. Crashes (confidence None) are left out."""
    pairs = [(c, r) for c, r in zip(confidences, right, strict=True) if c is not None]
    buckets = []
    for i, (lo, hi) in enumerate(BUCKETS):
        inside = [r for c, r in pairs if bucket_of(c) == i]
        buckets.append({"lo": lo, "hi": hi, "runs": len(inside), "right": sum(inside)})
    confident = [r for c, r in pairs if c >= CONFIDENT]
    wrong = [c for c, r in pairs if not r]
    return {
        "buckets": buckets,
        "confident": {"right": sum(confident), "runs": len(confident)},
        "wrong_unsure": {"count": sum(c < CONFIDENT for c in wrong), "wrong": len(wrong)},
        "left_out": len(confidences) - len(pairs),
    }


def trainproof_verdict(rule_ids: list[str], *, spike_fails: bool = False) -> str:
    """The 3-way verdict read from trainproof's findings (see the module docstring)."""
    failed = TP_FAILED | {TP_SPIKE} if spike_fails else TP_FAILED
    if any(r in failed for r in rule_ids):
        return "failed"
    if any(r in TP_OVERFIT for r in rule_ids):
        return "overfit"
    return "fine"


# ---- running the tools ----


def run_swiftops(cases: list[Case], settings: Any = None) -> tuple[list[dict[str, Any]], float]:
    from swiftops.classify import classify_target, find_targets
    from swiftops.diagnosis import ClassifySettings

    settings = settings or ClassifySettings()
    out = []
    start = time.perf_counter()
    for case in cases:
        try:
            targets = find_targets(case.run_dir)
            result = classify_target(targets[0], settings)
            figures = result["figures"]
            first, final = figures.get("first_train_loss"), figures.get("final_train_loss")
            out.append(
                {
                    "verdict": result["verdict"],
                    "confidence": float(result["confidence"]),
                    "next_text": result["next"]["text"],
                    "ended_higher": ended_higher(targets[0].run_dir, settings) if first and final else False,
                }
            )
        except Exception as exc:  # a crash is a result, never the end of the benchmark
            out.append({"verdict": CRASH, "confidence": None, "error": f"{type(exc).__name__}: {exc}"})
    return out, time.perf_counter() - start


def ended_higher(run_dir: Path | None, settings: Any) -> bool:
    """The training loss's late level (median of its last quarter) above its first point."""
    from swiftops.curves import read_curves
    from swiftops.diagnosis.signal import level, prepare

    sig = prepare("training loss", read_curves(run_dir).train_loss, settings) if run_dir else None
    return sig is not None and level(sig).z > 0


def run_trainproof(cases: list[Case]) -> tuple[list[dict[str, Any]], float]:
    """Each case's rule ids, or unreadable. Raises ImportError without trainproof."""
    from trainproof.epoch import check_epoch

    out = []
    start = time.perf_counter()
    for case in cases:
        path = log_file(case.run_dir)
        if path is None:
            out.append({"rules": [], "unreadable": "no log file"})
            continue
        try:
            report = check_epoch(path)
        except Exception as exc:
            out.append({"rules": [], "unreadable": f"{type(exc).__name__}: {exc}"})
            continue
        rules = [f.get("id", "") for f in report.get("findings", [])]
        unreadable = next((r for r in rules if r in TP_UNREADABLE), None)
        out.append({"rules": [] if unreadable else rules, "unreadable": unreadable})
    return out, time.perf_counter() - start


# ---- the figures ----


# every threshold a verdict rests on (overshoot_z, chance_band and the lr factors shape warnings and
# advice only; the watchdog's are measured by benchmarks/watchdog.py)
SENSITIVITY = (
    "noise_z",
    "unmeasured_rise",
    "tail_fraction",
    "settle_ratio",
    "overfit_share",
    "overfit_rise",
    "zero_share",
    "resolution",
)
FACTORS = (0.75, 1, 1.33)


def sensitivity(cases: list[Case]) -> dict[str, dict[str, int]]:
    """Lenient agreement with each threshold scaled by 0.75, 1 and 1.33: a rule fitted to a few
    cases shows as a cliff here; one that holds as a principle barely moves."""
    from swiftops.diagnosis import ClassifySettings

    base = ClassifySettings()
    out: dict[str, dict[str, int]] = {}
    for name in SENSITIVITY:
        out[name] = {}
        for factor in FACTORS:
            settings = replace(base, **{name: getattr(base, name) * factor})
            results, _ = run_swiftops(cases, settings)
            out[name][str(factor)] = score([r["verdict"] for r in results], cases, lenient=True)[0]
    return out


def run_sensitivity(run_dirs: list[Path]) -> dict[str, dict[str, Any]]:
    """Each run's verdict at the defaults and with each threshold scaled by 0.75 and 1.33: a run whose
    verdict flips sits on a knife-edge, and the same run on another machine may flip too."""
    from swiftops.classify import classify_target, find_targets
    from swiftops.diagnosis import ClassifySettings

    base = ClassifySettings()
    out: dict[str, dict[str, Any]] = {}
    for folder in run_dirs:
        for target in find_targets(folder):
            name = str(target.job_dir or target.run_dir)
            verdict = classify_target(target, base)["verdict"]
            flips = []
            for key in SENSITIVITY:
                for factor in (0.75, 1.33):
                    settings = replace(base, **{key: getattr(base, key) * factor})
                    other = classify_target(target, settings)["verdict"]
                    if other != verdict:
                        flips.append(f"{key} x{factor}: {other}")
            out[name] = {"verdict": verdict, "flips": flips}
    return out


def time_many_long_runs(runs: int = 100, steps: int = 20_000) -> float:
    """Seconds to diagnose `runs` runs of `steps` training points each (an eval every 500 steps),
    built in memory: the diagnosis alone, without reading files (benchmarks/read_curves.py times that)."""
    import numpy as np

    from swiftops.curves import Curves, series_from_points
    from swiftops.diagnosis import diagnose

    rng = np.random.default_rng(0)
    x = np.arange(1, steps + 1)
    evals = x[499::500]
    batch = []
    for i in range(runs):
        train = (2.0 * np.exp(-x / (2000 + 50 * i)) + 0.5) * np.exp(0.05 * rng.standard_normal(steps))
        ev = 2.0 * np.exp(-evals / 2500) + 0.6 + 1e-5 * np.maximum(evals - 10_000, 0) * (i % 2)
        scalars = {"train/loss": series_from_points(x, train), "eval/loss": series_from_points(evals, ev)}
        batch.append(Curves(None, scalars, None, None, "memory", max_steps=steps))
    start = time.perf_counter()
    for curves in batch:
        diagnose(curves, params={"lr": 1e-4, "epochs": 3})
    return time.perf_counter() - start


def fraction(k: int, n: int) -> dict[str, Any]:
    return {"right": k, "of": n, "percent": round(100 * k / n, 1) if n else None}


def headline(preds: list[str], preds3: list[str], cases: list[Case]) -> dict[str, Any]:
    """The agreement figures of one tool on a set of cases (3-way predictions already mapped)."""
    return {
        "strict": fraction(*score(preds, cases)),
        "lenient": fraction(*score(preds, cases, lenient=True)),
        "strict_unambiguous": fraction(*score(preds, cases, unambiguous_only=True)),
        "three_way_strict": fraction(*score(preds3, cases, three=True)),
        "three_way_lenient": fraction(*score(preds3, cases, three=True, lenient=True)),
        "three_way_unambiguous": fraction(*score(preds3, cases, three=True, unambiguous_only=True)),
    }


def by_half(preds: list[str], preds3: list[str], cases: list[Case]) -> dict[str, Any]:
    out = {}
    for half in ("tuning", "check"):
        keep = [i for i, c in enumerate(cases) if c.half == half]
        out[half] = headline([preds[i] for i in keep], [preds3[i] for i in keep], [cases[i] for i in keep])
    return out


def figures(corpus: Path, cases: list[Case], swift: list[dict], swift_s: float, tp, tp_s) -> dict[str, Any]:
    preds = [r["verdict"] for r in swift]
    preds3 = [three_way(p) for p in preds]
    lenient_right = [p in accepted(c, lenient=True, three=False) for p, c in zip(preds, cases, strict=True)]
    labels = [c.verdict for c in cases]
    wrong = [c.name for c, r in zip(cases, swift, strict=True) if wrong_direction(c, r)]
    out: dict[str, Any] = {
        "corpus": str(corpus),
        "runs": len(cases),
        "halves": {h: sum(c.half == h for c in cases) for h in ("tuning", "check")},
        "swiftops": {
            **headline(preds, preds3, cases),
            "halves": by_half(preds, preds3, cases),
            "per_verdict": precision_recall(labels, preds, VERDICTS),
            "per_verdict_three_way": precision_recall([three_way(v) for v in labels], preds3, THREE_WAY),
            "wrong_direction": wrong,
            "wrong_direction_halves": {
                h: sum(c.half == h for c in cases if c.name in wrong) for h in ("tuning", "check")
            },
            "crashes": preds.count(CRASH),
            "confusion": confusion([c.verdict for c in cases], preds, VERDICTS),
            "calibration": calibration([r["confidence"] for r in swift], lenient_right),
            "misses": [
                {
                    "case": c.name,
                    "predicted": r["verdict"],
                    "confidence": r["confidence"],
                    "error": r.get("error"),
                    "label": c.verdict,
                    "alts": list(c.alts) if c.ambiguous else [],
                }
                for c, r, ok in zip(cases, swift, lenient_right, strict=True)
                if not ok
            ],
            "seconds": round(swift_s, 3),
        },
        "trainproof": None,
    }
    if tp is None:
        return out
    tp3 = [trainproof_verdict(r["rules"]) for r in tp]
    tp3_spike = [trainproof_verdict(r["rules"], spike_fails=True) for r in tp]
    out["trainproof"] = {
        "three_way_strict": fraction(*score(tp3, cases, three=True)),
        "three_way_lenient": fraction(*score(tp3, cases, three=True, lenient=True)),
        "three_way_unambiguous": fraction(*score(tp3, cases, three=True, unambiguous_only=True)),
        "halves": {
            half: {
                "three_way_unambiguous": fraction(
                    *score(
                        [v for v, c in zip(tp3, cases, strict=True) if c.half == half],
                        [c for c in cases if c.half == half],
                        three=True,
                        unambiguous_only=True,
                    )
                )
            }
            for half in ("tuning", "check")
        },
        "per_verdict_three_way": precision_recall([three_way(c.verdict) for c in cases], tp3, THREE_WAY),
        "spike_as_failed": {
            "three_way_strict": fraction(*score(tp3_spike, cases, three=True)),
            "three_way_lenient": fraction(*score(tp3_spike, cases, three=True, lenient=True)),
        },
        "unreadable": [c.name for c, r in zip(cases, tp, strict=True) if r["unreadable"]],
        "confusion": confusion([three_way(c.verdict) for c in cases], tp3, THREE_WAY),
        "verdicts": {c.name: v for c, v in zip(cases, tp3, strict=True)},
        "seconds": round(tp_s, 3),
    }
    return out


# ---- text output ----


def cell(f: dict[str, Any] | None) -> str:
    if f is None:
        return "-"
    if not f["of"]:
        return "0/0"
    return f"{f['right']}/{f['of']} ({f['percent']:.0f}%)"


def format_confusion(matrix: dict[str, dict[str, int]], title: str) -> list[str]:
    corner = "label \\ predicted"
    cols = list(next(iter(matrix.values())))
    width = max(len(c) for c in [*cols, *matrix]) + 2
    lines = [title, f"{corner:<{len(corner) + 1}}" + "".join(f"{c:>{width}}" for c in cols)]
    for row, counts in matrix.items():
        lines.append(f"{row:<{len(corner) + 1}}" + "".join(f"{counts[c]:>{width}}" for c in cols))
    return lines


def format_text(fig: dict[str, Any]) -> str:
    sw, tp = fig["swiftops"], fig["trainproof"]
    lines = [f"diagnosis corpus: {fig['corpus']} ({fig['runs']} runs)", ""]

    heads = (
        "tool",
        "strict",
        "lenient",
        "strict unambiguous",
        "3-way strict",
        "3-way lenient",
        "3-way unamb.",
    )
    keys = (
        "strict",
        "lenient",
        "strict_unambiguous",
        "three_way_strict",
        "three_way_lenient",
        "three_way_unambiguous",
    )
    rows = [["swiftops", *(cell(sw[k]) for k in keys)]]
    if tp is not None:
        rows.append(["trainproof", *(cell(tp.get(k)) for k in keys)])
    widths = [max(len(r[i]) for r in [list(heads), *rows]) for i in range(len(heads))]
    for r in [list(heads), None, *rows]:
        if r is None:
            lines.append("-+-".join("-" * w for w in widths))
        else:
            lines.append(" | ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    if sw["crashes"]:
        lines.append(f"swiftops crashed on {sw['crashes']} run(s) (counted as verdict 'crash')")
    if tp is None:
        lines.append("trainproof is not installed: pip install trainproof (for the side-by-side figures)")
    else:
        lines.append(f"unreadable by trainproof: {len(tp['unreadable'])} (counted as fine)")
        spike = tp["spike_as_failed"]
        lines.append(
            f"trainproof with {TP_SPIKE} counted as failed: 3-way strict {cell(spike['three_way_strict'])}, "
            f"3-way lenient {cell(spike['three_way_lenient'])}"
        )

    lines += [
        "",
        f"fixed halves ({fig['halves']['tuning']} tuning, {fig['halves']['check']} check runs)",
    ]
    for half, got in sw["halves"].items():
        row = ", ".join(
            f"{k} {cell(got[k])}" for k in ("lenient", "strict_unambiguous", "three_way_unambiguous")
        )
        if tp is not None:
            row += f"; trainproof 3-way unamb. {cell(tp['halves'][half]['three_way_unambiguous'])}"
        lines.append(f"  {half:<7} swiftops {row}")
    if tp is not None:
        ours, theirs = sw["three_way_unambiguous"], tp["three_way_unambiguous"]
        gap = (ours["percent"] or 0) - (theirs["percent"] or 0)
        lines.append(f"3-way on unambiguous runs: swiftops {gap:+.0f} points over trainproof (target >= +10)")

    lines += ["", "per verdict, strict (precision: of the runs given it; recall: of the runs labelled it)"]
    for v, pr in sw["per_verdict"].items():
        lines.append(
            f"  swiftops   {v:<10} precision {cell(pr['precision']):<13} recall {cell(pr['recall'])}"
        )
    for v, pr in sw["per_verdict_three_way"].items():
        lines.append(
            f"  swiftops   3-way {v:<7}   precision {cell(pr['precision']):<13} recall {cell(pr['recall'])}"
        )
    if tp is not None:
        for v, pr in tp["per_verdict_three_way"].items():
            lines.append(
                f"  trainproof 3-way {v:<7}   precision {cell(pr['precision']):<13} "
                f"recall {cell(pr['recall'])}"
            )
    wrong = sw["wrong_direction"]
    halves = sw["wrong_direction_halves"]
    lines.append(
        f"wrong-direction advice: {len(wrong)} (tuning {halves['tuning']}, check {halves['check']}; target 0)"
        + (": " + ", ".join(wrong) if wrong else "")
    )

    lines += ["", *format_confusion(sw["confusion"], "swiftops confusion (rows: label, columns: predicted)")]
    if tp is not None:
        title = "trainproof confusion, 3-way (rows: label, columns: predicted)"
        lines += ["", *format_confusion(tp["confusion"], title)]

    cal = sw["calibration"]
    lines += ["", "swiftops calibration (lenient accuracy by confidence)"]
    lines.append(f"{'confidence':<12} {'runs':>5}  right")
    for i, b in enumerate(cal["buckets"]):
        span = f"[{b['lo']:.2f}, {b['hi']:.2f}{']' if i == len(cal['buckets']) - 1 else ')'}"
        acc = f"{b['right']}/{b['runs']} ({100 * b['right'] / b['runs']:.0f}%)" if b["runs"] else "-"
        lines.append(f"{span:<12} {b['runs']:>5}  {acc}")
    conf, unsure = cal["confident"], cal["wrong_unsure"]
    pct = f" ({100 * conf['right'] / conf['runs']:.0f}%)" if conf["runs"] else ""
    lines.append(f"confidence >= {CONFIDENT}: {conf['right']}/{conf['runs']} right{pct}")
    lines.append(f"wrong verdicts with confidence < {CONFIDENT}: {unsure['count']}/{unsure['wrong']}")
    if cal["left_out"]:
        lines.append(f"({cal['left_out']} crash(es) have no confidence and are left out of the calibration)")

    lines += ["", f"swiftops misses (lenient): {len(sw['misses'])}"]
    width = max((len(m["case"]) for m in sw["misses"]), default=4)
    for m in sw["misses"]:
        if m["confidence"] is None:
            got = f"{m['predicted']} ({m['error']})"
        else:
            got = f"{m['predicted']} ({m['confidence']:.2f})"
        label = m["label"] + (f" (alt {'|'.join(m['alts'])})" if m["alts"] else "")
        lines.append(f"  {m['case']:<{width}}  predicted {got:<22}  label {label}")

    lines += ["", "sensitivity: lenient agreement with one threshold scaled (the others at their defaults)"]
    for name, by_factor in fig["sensitivity"].items():
        row = "  ".join(f"x{factor}: {k}/{fig['runs']}" for factor, k in by_factor.items())
        lines.append(f"  {name:<15} {row}")

    if fig.get("runs_sensitivity"):
        lines += ["", "sensitivity of the given runs' verdicts (each threshold x0.75 and x1.33)"]
        for name, got in fig["runs_sensitivity"].items():
            flips = "; ".join(got["flips"]) if got["flips"] else "no flip"
            lines.append(f"  {name}: {got['verdict']} ({flips})")

    lines += ["", f"time: swiftops {sw['seconds']:.2f} s for {fig['runs']} runs"]
    if tp is not None:
        lines[-1] += f", trainproof {tp['seconds']:.2f} s"
    if "long_runs_s" in fig:
        lines.append(
            f"time: diagnose 100 runs x 20k steps in memory: {fig['long_runs_s']:.2f} s (target <= 5 s)"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="labelled corpus folder")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.add_argument(
        "--runs",
        nargs="*",
        type=Path,
        default=[],
        help="run or sweep folders: each verdict's threshold flips",
    )
    args = parser.parse_args(argv)
    corpus = args.corpus
    if not (corpus / "labels.csv").is_file() or not (corpus / "runs").is_dir():
        print(f"no labelled corpus at {corpus} (needs labels.csv and runs/)", file=sys.stderr)
        return 2
    cases = read_labels(corpus)

    swift, swift_s = run_swiftops(cases)
    try:
        tp, tp_s = run_trainproof(cases)
    except ImportError:
        tp, tp_s = None, 0.0
    fig = figures(corpus, cases, swift, swift_s, tp, tp_s)
    fig["sensitivity"] = sensitivity(cases)
    fig["runs_sensitivity"] = run_sensitivity(args.runs)
    fig["long_runs_s"] = round(time_many_long_runs(), 3)
    if args.json:
        if tp is None:
            fig["trainproof_missing"] = "trainproof is not installed: pip install trainproof"
        print(json.dumps(fig, indent=2))
    else:
        print(format_text(fig))
    return 0


if __name__ == "__main__":
    sys.exit(main())
