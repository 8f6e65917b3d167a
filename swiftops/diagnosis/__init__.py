"""The diagnosis: curves -> verdict (failed / underfit / overfit / converged), the numbers behind it,
a calibrated confidence, and the next experiment to run (pure; numpy only).

The verdicts mean what the five-experiment tutorial says they mean:

- failed: the run did not learn (flat) or broke (ended above its start, NaN/Inf, stuck at exactly
  0.0, a non-zero exit);
- underfit: it learned and is still falling at the end;
- overfit: the eval loss rose after its minimum while the training loss fell;
- converged: it learned and has levelled off.

Its parts:

- settings: the thresholds (ClassifySettings), each explained once;
- signal: the statistics (a loss on a log scale with its own noise, Theil-Sen trends, "learned");
- evidence: what the rules read (Evidence, prepared once) and return (Finding);
- rules: the verdict rules as one ordered table (RULES; the watchdog runs WATCHDOG_RULES of it);
- advice: the next step, following the cause;
- verdict: diagnose(), which puts them together, and the watchdog's verdict.
"""

from swiftops.diagnosis.advice import NextStep
from swiftops.diagnosis.evidence import Finding
from swiftops.diagnosis.rules import RULES, WATCHDOG_RULES
from swiftops.diagnosis.settings import ClassifySettings
from swiftops.diagnosis.verdict import (
    FIGURES,
    NO_EVIDENCE,
    VERDICTS,
    Diagnosis,
    diagnose,
    diagnose_recorded,
    watchdog_verdict,
)

__all__ = [
    "FIGURES",
    "NO_EVIDENCE",
    "RULES",
    "VERDICTS",
    "WATCHDOG_RULES",
    "ClassifySettings",
    "Diagnosis",
    "Finding",
    "NextStep",
    "diagnose",
    "diagnose_recorded",
    "watchdog_verdict",
]
