"""Scoring of infer results: the math tutorial's exam rule on its real test answers, quirks
included, and the self-cognition identity check."""

from __future__ import annotations

import json

import pytest
from conftest import TUTORIAL_DATA, needs_shared

from swiftops.scoring import (
    EXAM,
    IDENTITY,
    choose_scorer,
    exam_points,
    exam_score,
    expected_answer,
    identity_names,
    identity_score,
    score_rows,
    score_summary,
)

# the tutorial's 10-question exam (README of the tutorial data)
TUTORIAL_ANSWERS = ["78", "400", "60", "7", "25", "15", "30", "33", "364", "600"]
ZH_TEST = TUTORIAL_DATA / "zh" / "test.jsonl"
EN_TEST = TUTORIAL_DATA / "en" / "test.jsonl"

needs_tutorial = needs_shared("tutorial_data", "zh", "test.jsonl")


def tutorial_labels(path) -> list[str]:
    """The reference answers of the tutorial's exam, as swift infer writes them in `labels`."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [row["messages"][-1]["content"] for row in rows]


def result(response: str, label: str) -> dict:
    return {"response": response, "labels": label, "messages": []}


@needs_tutorial
@pytest.mark.parametrize("path", [ZH_TEST, EN_TEST], ids=["zh", "en"])
def test_the_exam_answers_are_read_from_the_tutorial_labels(path):
    assert [expected_answer(label) for label in tutorial_labels(path)] == TUTORIAL_ANSWERS


@needs_tutorial
def test_perfect_half_and_empty_answers_on_the_real_exam():
    labels = tutorial_labels(ZH_TEST)
    # the labels themselves hold the tag: a model that answers exactly as taught scores 100
    assert exam_score([result(label, label) for label in labels])["score"] == 100.0
    # bare numbers only: 0.5 each
    bare = exam_score(
        [result(f"答案是{n}", label) for n, label in zip(TUTORIAL_ANSWERS, labels, strict=True)]
    )
    assert (bare["score"], bare["points"], bare["n"]) == (50.0, 5.0, 10)
    assert {item["match"] for item in bare["per_item"]} == {"number"}
    # nothing of the answer at all
    assert exam_score([result("不知道", label) for label in labels])["score"] == 0.0


@needs_tutorial
def test_a_mixed_exam_sheet_scores_as_the_tutorial_rule_says():
    labels = tutorial_labels(ZH_TEST)
    responses = [
        "合计78页 {{ans:78}}",  # 78: tag -> 1
        "周长是400厘米",  # 400: bare -> 0.5
        "{{ans:50}}",  # 60: wrong, and no '60' anywhere -> 0
        "倍数是17倍",  # 7: the bare '7' inside '17' -> 0.5 (the tutorial's leniency)
        "{{ans:25}}元",  # 25: tag -> 1
        "{{ans: 15}}",  # 15: a space breaks the tag, the bare number still counts -> 0.5
        "{{ans:300}}",  # 30: '30' inside '300' -> 0.5
        "",  # 33: empty -> 0
        "364",  # 364 -> 0.5
        "{{ans:600}} {{ans:601}}",  # 600: the right tag is there -> 1
    ]
    scored = exam_score([result(r, label) for r, label in zip(responses, labels, strict=True)])
    assert [item["points"] for item in scored["per_item"]] == [1, 0.5, 0, 0.5, 1, 0.5, 0.5, 0, 0.5, 1]
    assert scored["points"] == 5.5 and scored["n"] == 10 and scored["score"] == 55.0
    assert [item["expected"] for item in scored["per_item"]] == TUTORIAL_ANSWERS


def test_a_bare_7_inside_17_earns_half_a_point():
    """The quirk, without the data files: the wrong answer {{ans:17}} still earns 0.5 for 7."""
    label = "倍数计算：63 ÷ 9 = 7 \n\n{{ans:7}}"
    assert exam_points("{{ans:17}}", "7") == (0.5, "number")
    assert exam_points("2017年", "7") == (0.5, "number")
    assert exam_points("{{ans:7}}", "7") == (1.0, "tag")
    assert exam_points("八", "7") == (0.0, "none")
    assert exam_score([result("{{ans:17}}", label)])["score"] == 50.0


def test_the_last_tag_of_a_label_is_the_answer_and_rows_without_one_are_left_out():
    assert expected_answer("first {{ans:3}} then {{ans: 4 }}") == "4"
    assert expected_answer("no tag here") is None
    scored = exam_score([result("{{ans:4}}", "{{ans:4}}"), result("hi", "hello")])
    assert (scored["n"], scored["unscored"], scored["score"]) == (1, 1, 100.0)
    assert exam_score([result("x", "y")])["score"] is None
    # labels as a list (several references) are searched all
    assert exam_score([{"response": "{{ans:9}}", "labels": ["a", "{{ans:9}}"]}])["score"] == 100.0


def test_identity_names_take_both_languages():
    data = {"model_name": ["小黄", "Xiao Huang"], "model_author": "ModelScope"}
    assert identity_names(data) == ["小黄", "Xiao Huang", "ModelScope"]
    assert identity_names({"model_name": None, "model_author": []}) == []
    assert identity_names({"model_name": ["swift", "swift"]}) == ["swift"]


def test_identity_score_counts_answers_naming_the_model_in_either_language():
    names = ["小黄", "Xiao Huang", "魔搭", "ModelScope"]
    rows = [
        result("我是小黄，由魔搭开发。", "我是小黄，由魔搭训练的人工智能助手。"),
        result("I am xiao huang.", "I am Xiao Huang, an assistant trained by ModelScope."),  # case folded
        result("I am Qwen, made by Alibaba.", "I am Xiao Huang."),
        result("我是通义千问。", "我是小黄。"),
        result("4", "2 plus 2 is 4."),  # not an identity question: not counted
    ]
    scored = identity_score(rows, names)
    assert (scored["hits"], scored["n"], scored["score"]) == (2, 4, 50.0)
    assert [item["index"] for item in scored["per_item"]] == [0, 1, 2, 3]
    assert scored["per_item"][1]["name"] == "Xiao Huang"


def test_identity_rows_all_count_when_no_reference_names_the_model():
    rows = [result("I am swift-robot", "I am {{NAME}}"), result("I am Qwen", "I am {{NAME}}")]
    assert identity_score(rows, ["swift-robot"])["score"] == 50.0
    assert identity_score(rows, [])["score"] is None
    assert identity_score([], ["x"])["score"] is None


def test_the_scorer_follows_the_labels_and_the_data():
    exam_rows = [result("{{ans:1}}", "1 {{ans:1}}")]
    identity_rows = [result("I am swift-robot", "I am swift-robot, by swift.")]
    named = {"model_name": "swift-robot", "model_author": "swift"}
    assert choose_scorer(exam_rows, named) == EXAM  # exam labels win over names
    assert choose_scorer(identity_rows, named) == IDENTITY
    assert choose_scorer(identity_rows, {"model_name": None}) is None

    assert score_rows(exam_rows, {})["scorer"] == EXAM
    identity = score_rows(identity_rows, named)
    assert (identity["scorer"], identity["score"], identity["names"]) == (
        IDENTITY,
        100.0,
        ["swift-robot", "swift"],
    )
    assert score_rows(identity_rows, {}) == {"scorer": None, "score": None, "n": 1}
    assert "per_item" not in score_summary(score_rows(exam_rows, {}))
