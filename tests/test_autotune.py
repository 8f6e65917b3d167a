"""The autotune's planning, pure: changes applied to overrides, config identity, the next round
(no repeats, backtracking, branching, the budget), its settings, and the quoting of a reason."""

from __future__ import annotations

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from swiftops.autotune import (
    AutotuneSettings,
    Step,
    Tried,
    apply_change,
    best_run,
    is_lineage,
    lineage_overrides,
    next_round,
    plain_identity,
    quote,
    recommended_overrides,
)


def tried(num, overrides, verdict, *steps, status="completed", eval_loss=None):
    return Tried(
        job_num=num,
        overrides=tuple(overrides),
        status=status,
        verdict=verdict,
        steps=[{"text": f"do {s}", "override": s} for s in steps],
        best_eval_loss=eval_loss,
    )


def test_a_change_replaces_the_key_it_sets_and_keeps_the_rest_in_order():
    assert apply_change(("experiment=x", "lr=0.1", "epochs=1"), "lr=1e-3") == (
        "experiment=x",
        "epochs=1",
        "lr=1e-3",
    )
    assert apply_change(("lr=0.1",), "epochs=3") == ("lr=0.1", "epochs=3")
    assert apply_change(("+args.x=1",), "args.x=2") == ("args.x=2",)


def test_identity_compares_numbers_as_numbers_and_ignores_order():
    assert plain_identity(["lr=0.001", "epochs=3"]) == plain_identity(["epochs=3.0", "lr=1e-3"])
    assert plain_identity(["lr=0.001"]) != plain_identity(["lr=0.01"])


def test_the_first_untried_step_of_the_newest_run_is_next():
    history = [tried(0, ["lr=0.1"], "failed", "lr=1e-3", "lr=0.01")]
    seen = {plain_identity(["lr=0.1"])}
    [step] = next_round(history, seen, plain_identity, branch=False, room=5)
    assert step == Step(("lr=1e-3",), parent=0, change="lr=1e-3", why="job 0 failed: do lr=1e-3")


def test_a_step_whose_config_ran_is_passed_over_for_the_alternative():
    history = [
        tried(0, ["epochs=1"], "underfit", "epochs=3", "lr=0.01"),
        tried(1, ["epochs=3"], "overfit", "epochs=1"),  # back to where it came from: tried
    ]
    seen = {plain_identity(["epochs=1"]), plain_identity(["epochs=3"])}
    [step] = next_round(history, seen, plain_identity, branch=False, room=5)
    assert (step.parent, step.change) == (0, "lr=0.01")  # backtracked to job 0's other step


def test_no_untried_step_left_ends_the_rounds():
    history = [tried(0, ["epochs=1"], "underfit", "epochs=3"), tried(1, ["epochs=3"], "overfit", "epochs=1")]
    seen = {plain_identity(["epochs=1"]), plain_identity(["epochs=3"])}
    assert next_round(history, seen, plain_identity, branch=False, room=5) == []


def test_the_loop_never_revisits_a_config_whatever_the_verdicts_say():
    """Verdicts that send the runs back and forth between two values: every planned config is
    new, and the planning ends."""
    seen: set[str] = set()
    history = []
    overrides: tuple[str, ...] = ("epochs=1",)
    seen.add(plain_identity(overrides))
    for num in range(20):
        epochs = float(dict(o.split("=") for o in overrides)["epochs"])
        steps = ("epochs=3",) if epochs < 2 else ("epochs=1", "lr=0.5")
        history.append(tried(num, overrides, "underfit" if epochs < 2 else "overfit", *steps))
        planned = next_round(history, seen, plain_identity, branch=False, room=10)
        if not planned:
            break
        overrides = planned[0].overrides
    identities = [plain_identity(t.overrides) for t in history]
    assert len(identities) == len(set(identities))
    assert len(history) < 20


def test_converged_interrupted_and_failed_without_a_knob_plan_nothing():
    for run in (
        tried(0, [], "converged", "stages=[infer,export] ckpt=best"),
        tried(0, ["lr=0.1"], "underfit", "epochs=3", status="interrupted"),
        tried(0, ["lr=0.1"], "failed"),  # swift crashed: fix the cause, no knob to turn
    ):
        assert next_round([run], set(), plain_identity, branch=False, room=5) == []


def test_branching_runs_every_fitting_step_of_the_last_round_within_the_room():
    history = [
        tried(0, ["lr=0.1"], "failed", "lr=1e-3", "lr=0.01"),
        tried(1, ["lr=1e-3"], "underfit", "epochs=3", "lr=0.01"),
        tried(2, ["lr=0.01"], "underfit", "epochs=3", "lr=0.1"),
    ]
    seen = {plain_identity(t.overrides) for t in history}
    planned = next_round(history, seen, plain_identity, branch=True, room=5, last_round=[1, 2])
    assert [(s.parent, s.change) for s in planned] == [(1, "epochs=3"), (2, "epochs=3")]
    # lr=0.01 from job 1 is job 2's config, lr=0.1 from job 2 is job 0's: both passed over
    seen = {plain_identity(t.overrides) for t in history}
    assert len(next_round(history, seen, plain_identity, branch=True, room=1, last_round=[1, 2])) == 1


def test_the_best_run_is_the_converged_one_with_the_lowest_eval_loss():
    history = [
        tried(0, [], "underfit", eval_loss=0.1),
        tried(1, [], "converged", eval_loss=0.5),
        tried(2, [], "converged", eval_loss=0.4),
    ]
    assert best_run(history).job_num == 2
    assert best_run(history[:1]) is None


@pytest.mark.parametrize(
    ("section", "wrong"),
    [
        ({"max_runs": 0}, "autotune.max_runs = 0"),
        ({"max_rounds": -1}, "autotune.max_rounds = -1"),
        ({"max_runs": 2.5}, "autotune.max_runs = 2.5"),
        ({"branch": "yes"}, "autotune.branch = 'yes'"),
        ({"finish": ["infer", "deploy"]}, "autotune.finish = ['infer', 'deploy']"),
    ],
)
def test_bad_settings_name_the_value_and_what_is_valid(section, wrong):
    with pytest.raises(ValueError, match="use ") as err:
        AutotuneSettings.from_config(section)
    assert wrong in str(err.value)


def test_settings_keep_the_finish_stages_in_pipeline_order():
    assert AutotuneSettings.from_config({"finish": ["export", "infer"]}).finish == ("infer", "export")
    assert AutotuneSettings.from_config(None) == AutotuneSettings()


@pytest.mark.parametrize(
    "why",
    [
        "job 0 failed: Lower the learning rate 100x (0.1 -> 1e-3): the loss rose, +34% (3.1 -> 4.2)",
        "it's a 'quoted' word, a comma, an = sign and a back\\slash",
        "an interpolation ${oops} is not read",
        "a backslash before a quote \\' and at the end \\",
    ],
)
def test_a_reason_reaches_the_job_as_one_string_through_hydras_parser(why):
    step = Step(("lr=1e-3",), parent=0, change="lr=1e-3", why=why)
    parsed = OverridesParser.create().parse_overrides(lineage_overrides(step))
    values = {o.key_or_group: o.value() for o in parsed}
    assert values["autotune.parent"] == 0
    assert values["autotune.change"] == "lr=1e-3"
    assert values["autotune.why"] == why.replace("${", "$ {")
    assert all(is_lineage(o) for o in lineage_overrides(step))
    assert quote("a") == "'a'"


def test_the_recommendation_is_a_single_run_command():
    assert recommended_overrides(("+sweep=autotune", "experiment=x", "lr=1e-3")) == "experiment=x lr=1e-3"
