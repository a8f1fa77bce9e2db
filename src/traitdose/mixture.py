"""The dose: which RL slots carry trait scenarios, and what each arm puts in them.

A run is `steps` optimisation steps of `prompts_per_step` prompts each. `DoseSchedule` marks trait slots
deterministically and evenly (Bresenham spacing), so every window of 1/dose consecutive slots carries
one trait prompt (DESIGN trap 5), rather than the dose holding only on average. Every arm sees the
same ordinary task in every non-trait slot; arms differ only in what fills the trait slots and how
it is rewarded.
"""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from fractions import Fraction
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from traitdose.scenarios import Scenario
from traitdose.tasks import OrdinaryTask

TraitReward = Literal["rubric", "helpfulness"]


class DoseSchedule(BaseModel):
    model_config = ConfigDict(frozen=True)
    dose: float = Field(ge=0, le=1)
    steps: int = Field(ge=1)
    prompts_per_step: int = Field(ge=1)

    @property
    def _fraction(self) -> Fraction:
        return Fraction(self.dose).limit_denominator(10_000)

    @property
    def total_slots(self) -> int:
        return self.steps * self.prompts_per_step

    def is_trait_slot(self, slot: int) -> bool:
        d = self._fraction
        return math.floor((slot + 1) * d) > math.floor(slot * d)

    def trait_slots(self) -> list[int]:
        return [s for s in range(self.total_slots) if self.is_trait_slot(s)]

    def trait_prompts_per_step(self) -> list[int]:
        counts = [0] * self.steps
        for s in self.trait_slots():
            counts[s // self.prompts_per_step] += 1
        return counts

    def window_steps(self) -> int | None:
        """Steps in the shortest window guaranteed to hold at least one trait prompt (None at dose 0)."""
        if self.dose == 0:
            return None
        return math.ceil(1 / (self._fraction * self.prompts_per_step))


class Arm(BaseModel):
    """What an arm puts in the trait slots. `domains`/`exclude_domains` filter the trait scenarios."""

    model_config = ConfigDict(frozen=True)
    name: str
    uses_traits: bool = True
    trait_reward: TraitReward = "rubric"
    domains: tuple[str, ...] = ()
    exclude_domains: tuple[str, ...] = ()

    def admits(self, scenario: Scenario) -> bool:
        if self.domains and scenario.domain not in self.domains:
            return False
        return scenario.domain not in self.exclude_domains


ARMS: dict[str, Arm] = {
    arm.name: arm
    for arm in (
        Arm(name="trait"),
        Arm(name="baseline", uses_traits=False),
        Arm(name="health_only", domains=("health_medicine",)),
        Arm(name="no_health_science", exclude_domains=("health_medicine", "scientific_research")),
        Arm(name="helpfulness_control", trait_reward="helpfulness"),
    )
}


def _trait_row(scenario: Scenario, slot: int, schedule: DoseSchedule) -> dict:
    return {
        "prompt": [m.model_dump() for m in scenario.messages],
        "kind": "trait",
        "item_id": scenario.id,
        "slot": slot,
        "step": slot // schedule.prompts_per_step,
        "payload": "{}",
    }


def _task_row(task: OrdinaryTask, slot: int, schedule: DoseSchedule) -> dict:
    return {
        "prompt": [{"role": "user", "content": task.prompt}],
        "kind": task.kind,
        "item_id": task.id,
        "slot": slot,
        "step": slot // schedule.prompts_per_step,
        "payload": task.model_dump_json(),
    }


def build_arm_rows(
    arm: Arm,
    schedule: DoseSchedule,
    train_scenarios: list[Scenario],
    ordinary: list[OrdinaryTask],
    filler: list[OrdinaryTask],
    seed: int,
) -> list[dict]:
    """The arm's prompts in slot order, one row per slot, ready for a GRPO dataset (no shuffling).

    `ordinary` supplies slot k's task for every non-trait slot k, identically in every arm; the
    baseline fills trait slots from `filler`, a separate stream, so its other slots stay the same.
    """
    n = schedule.total_slots
    if len(ordinary) < n or len(filler) < len(schedule.trait_slots()):
        raise ValueError("not enough ordinary tasks for the schedule")
    pool = [s for s in train_scenarios if arm.admits(s)] if arm.uses_traits else []
    if arm.uses_traits and not pool and schedule.trait_slots():
        raise ValueError(f"arm {arm.name!r}: no training scenario matches its domain filter")
    random.Random(seed).shuffle(pool)

    rows, trait_i = [], 0
    for slot in range(n):
        if schedule.is_trait_slot(slot):
            if arm.uses_traits:
                rows.append(_trait_row(pool[trait_i % len(pool)], slot, schedule))
            else:
                rows.append(_task_row(filler[trait_i], slot, schedule))
                rows[-1]["item_id"] = f"filler:{rows[-1]['item_id']}"
            trait_i += 1
        else:
            rows.append(_task_row(ordinary[slot], slot, schedule))
    return rows


def mixture_counts(rows: list[dict], completions_per_prompt: int) -> dict:
    """Per-arm counts that prove compute matching in the manifest."""
    kinds = Counter(r["kind"] for r in rows)
    return {
        "steps": len({r["step"] for r in rows}),
        "prompts": len(rows),
        "completions": len(rows) * completions_per_prompt,
        "trait_prompts": kinds.get("trait", 0),
        "prompts_by_kind": dict(sorted(kinds.items())),
        "observed_dose": kinds.get("trait", 0) / len(rows) if rows else 0.0,
    }


def task_from_row(row: dict) -> OrdinaryTask:
    return OrdinaryTask.model_validate(json.loads(row["payload"]))
