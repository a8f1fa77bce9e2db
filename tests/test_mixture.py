import pytest

from traitdose.mixture import ARMS, DoseSchedule, build_arm_rows, mixture_counts
from traitdose.scenarios import load_bank
from traitdose.tasks import generate_mixture


@pytest.mark.parametrize("dose, steps, per_step", [(0.05, 200, 1), (0.05, 40, 8), (0.25, 4, 2), (0.1, 30, 3), (1 / 3, 12, 2)])
def test_every_window_carries_the_dose(dose, steps, per_step):
    schedule = DoseSchedule(dose=dose, steps=steps, prompts_per_step=per_step)
    flags = [schedule.is_trait_slot(s) for s in range(schedule.total_slots)]
    assert sum(flags) == round(dose * schedule.total_slots)
    # any k consecutive slots hold floor(k*d) or ceil(k*d) trait prompts: the dose per window, not on average
    for k in range(1, schedule.total_slots + 1):
        for start in range(0, schedule.total_slots - k + 1):
            count = sum(flags[start : start + k])
            assert abs(count - k * dose) < 1 + 1e-9
    w = schedule.window_steps()
    per_step_counts = schedule.trait_prompts_per_step()
    for start in range(0, steps - w + 1):
        assert sum(per_step_counts[start : start + w]) >= 1


def test_zero_dose_has_no_trait_slots():
    schedule = DoseSchedule(dose=0, steps=5, prompts_per_step=2)
    assert schedule.trait_slots() == [] and schedule.window_steps() is None


def _rows(arm, schedule, seed=0):
    n = schedule.total_slots
    ordinary = generate_mixture({"arithmetic": 1, "format": 1, "code": 1}, n, seed)
    filler = generate_mixture({"arithmetic": 1, "format": 1, "code": 1}, len(schedule.trait_slots()), seed + 1)
    return build_arm_rows(ARMS[arm], schedule, list(load_bank().train), ordinary, filler, seed)


def test_arms_are_compute_matched_and_differ_only_in_trait_slots():
    schedule = DoseSchedule(dose=0.25, steps=8, prompts_per_step=2)
    trait, baseline = _rows("trait", schedule), _rows("baseline", schedule)
    assert mixture_counts(trait, 4)["completions"] == mixture_counts(baseline, 4)["completions"] == 64
    assert mixture_counts(trait, 4)["trait_prompts"] == 4 and mixture_counts(baseline, 4)["trait_prompts"] == 0
    for t, b in zip(trait, baseline):
        assert t["step"] == b["step"]
        if schedule.is_trait_slot(t["slot"]):
            assert t["kind"] == "trait" and b["kind"] != "trait"
        else:
            assert t == b


def test_domain_arms_filter_scenarios_and_schedule_is_deterministic():
    schedule = DoseSchedule(dose=0.5, steps=6, prompts_per_step=2)
    bank = {s.id: s for s in load_bank().train}
    health = [r for r in _rows("health_only", schedule) if r["kind"] == "trait"]
    assert health and all(bank[r["item_id"]].domain == "health_medicine" for r in health)
    other = [r for r in _rows("no_health_science", schedule) if r["kind"] == "trait"]
    assert all(bank[r["item_id"]].domain not in ("health_medicine", "scientific_research") for r in other)
    assert _rows("trait", schedule) == _rows("trait", schedule)
    assert _rows("trait", schedule, seed=1) != _rows("trait", schedule)


def test_helpfulness_control_sees_the_same_prompts_as_trait():
    schedule = DoseSchedule(dose=0.25, steps=8, prompts_per_step=2)
    assert _rows("helpfulness_control", schedule) == _rows("trait", schedule)
    assert ARMS["helpfulness_control"].trait_reward == "helpfulness"
