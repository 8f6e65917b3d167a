"""Scores of `swift infer` results. Pure functions over the result rows: no files, no swift.

swift infer writes one JSON object a line: `{"response", "labels", "messages", ...}`, where
`response` is the model's answer and `labels` the reference answer of the test row (a string).
Two scorers, as in the tutorials swiftops reruns:

- exam: the math tutorial's rule, for rows whose reference answer carries `{{ans:N}}`;
- identity: the self-cognition walkthroughs' check, that the model names itself as taught.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

EXAM, IDENTITY = "exam", "identity"
ANSWER_TAG = re.compile(r"\{\{ans:(.*?)\}\}", re.DOTALL)


def label_text(row: Mapping[str, Any]) -> str:
    """The reference answer of a result row ('' when it has none). swift writes a string;
    a list (several references) is joined so every reference is searched."""
    labels = row.get("labels")
    if labels is None:
        return ""
    if isinstance(labels, list | tuple):
        return "\n".join(str(x) for x in labels if x is not None)
    return str(labels)


def response_text(row: Mapping[str, Any]) -> str:
    response = row.get("response")
    return "" if response is None else str(response)


def expected_answer(label: str) -> str | None:
    """N of the last `{{ans:N}}` in a reference answer (the final answer), stripped; None without one."""
    found = ANSWER_TAG.findall(label)
    return found[-1].strip() if found else None


def exam_points(response: str, answer: str) -> tuple[float, str]:
    """Points for one answer under the tutorial's rule, and which rule matched."""
    if "{{ans:" + answer + "}}" in response:
        return 1.0, "tag"
    if answer and answer in response:
        return 0.5, "number"
    return 0.0, "none"


def exam_score(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The math tutorial's exam rule, out of 100.

    For each row, the expected answer N is taken from the reference answer's `{{ans:N}}`
    (the last one, if several). The response earns 1 point if it contains the exact string
    `{{ans:N}}`, else 0.5 if it contains N anywhere as a substring, else 0. Score =
    100 * points / rows.

    The rule is lenient, as the tutorial's was, and the score should be read with that in
    mind: the bare-number test is a plain substring search, so for N = 7 a response
    mentioning "17", "2017" or "{{ans:17}}" earns 0.5; N found in the restated question or in
    an intermediate step counts too; and `{{ans: 7}}` (with a space) is not the exact tag, so
    it earns only the 0.5 of the bare number. Rows whose reference has no `{{ans:N}}` can't be
    scored by this rule and are left out (counted in `unscored`).

    Returns:
        {score, points, n, unscored, per_item: [{index, expected, points, match}]}; score is
        None when no row could be scored.
    """
    per_item, points, unscored = [], 0.0, 0
    for index, row in enumerate(rows):
        answer = expected_answer(label_text(row))
        if answer is None:
            unscored += 1
            continue
        earned, match = exam_points(response_text(row), answer)
        points += earned
        per_item.append({"index": index, "expected": answer, "points": earned, "match": match})
    n = len(per_item)
    return {
        "score": round(100.0 * points / n, 2) if n else None,
        "points": points,
        "n": n,
        "unscored": unscored,
        "per_item": per_item,
    }


def identity_names(data: Mapping[str, Any]) -> list[str]:
    """Every expected identity string of a data section: model_name and model_author, each a
    string or a [Chinese, English] list, as swift reads them."""
    names: list[str] = []
    for key in ("model_name", "model_author"):
        value = data.get(key)
        values = [value] if isinstance(value, str) else list(value or [])
        names.extend(str(v).strip() for v in values if v is not None and str(v).strip())
    return list(dict.fromkeys(names))  # unique, in order


def _mentions(text: str, names: Iterable[str]) -> str | None:
    """The first name found in text; Latin names match regardless of case ("Swift-Robot")."""
    folded = text.casefold()
    for name in names:
        if name.casefold() in folded:
            return name
    return None


def identity_score(rows: Sequence[Mapping[str, Any]], names: Sequence[str]) -> dict[str, Any]:
    """Share (0-100) of identity answers that contain any expected identity string.

    An identity answer is a row whose reference answer mentions one of `names` (a test set
    may mix identity questions with others); when no reference mentions one (no labels, or
    placeholders left unfilled), every row counts. A response passes when it contains any of
    the names, in either language, case-insensitively.

    Returns:
        {score, hits, n, per_item: [{index, hit, name}]}; score is None with no rows or names.
    """
    names = [n for n in names if n]
    indexed = list(enumerate(rows))
    asked = [(i, r) for i, r in indexed if _mentions(label_text(r), names)] or indexed
    per_item = []
    for index, row in asked:
        name = _mentions(response_text(row), names)
        per_item.append({"index": index, "hit": name is not None, "name": name})
    hits = sum(item["hit"] for item in per_item)
    n = len(per_item)
    return {
        "score": round(100.0 * hits / n, 2) if n and names else None,
        "hits": hits,
        "n": n,
        "per_item": per_item,
    }


def choose_scorer(rows: Sequence[Mapping[str, Any]], data: Mapping[str, Any]) -> str | None:
    """exam when any reference answer holds `{{ans:`; identity when the data names the model
    (model_name / model_author); else None (the rows are kept, not scored)."""
    if any("{{ans:" in label_text(r) for r in rows):
        return EXAM
    if identity_names(data):
        return IDENTITY
    return None


def score_rows(rows: Sequence[Mapping[str, Any]], data: Mapping[str, Any]) -> dict[str, Any]:
    """The fitting score of a test run: {scorer, score, n, ...the scorer's own fields}.
    With no fitting scorer: {scorer: None, score: None, n: len(rows)}."""
    scorer = choose_scorer(rows, data)
    if scorer == EXAM:
        return {"scorer": EXAM, **exam_score(rows)}
    if scorer == IDENTITY:
        names = identity_names(data)
        return {"scorer": IDENTITY, "names": names, **identity_score(rows, names)}
    return {"scorer": None, "score": None, "n": len(rows)}


def score_summary(score: Mapping[str, Any]) -> dict[str, Any]:
    """A score without its per-item list: what run.json keeps (score.json keeps everything)."""
    return {k: v for k, v in score.items() if k != "per_item"}
