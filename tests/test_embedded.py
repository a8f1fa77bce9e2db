"""The embedded default model (slow: ~70 s to dequantise on first use, then generation on CPU)."""

import json

import pytest

from traitdose.evaluate import evaluate_model, select_heldout
from traitdose.grading import DeterministicJudge, RubricGrader
from traitdose.models import EMBEDDED_SHA256, materialise_embedded, resolve_model
from traitdose.scenarios import load_bank

pytestmark = pytest.mark.slow


def test_embedded_model_builds_once_and_answers_heldout_scenarios(tmp_path):
    path = resolve_model("embedded")
    assert path == materialise_embedded()  # cached: the second call reuses the folder
    assert json.loads((path / "traitdose-model.json").read_text())["gguf_sha256"] == EMBEDDED_SHA256
    assert (path / "model.safetensors").stat().st_size > 1_000_000_000  # full-precision weights

    scenarios = select_heldout(load_bank().heldout, 1)[:3]
    grader = RubricGrader(DeterministicJudge())
    records = evaluate_model(path, "base", scenarios, grader, tmp_path / "logs", max_tokens=48)
    assert [r.item_id for r in records] == [s.id for s in scenarios]
    assert all(r.response.strip() for r in records)  # the chat template works: real text comes back
    assert all(r.score is not None and 0 <= r.score <= 1 for r in records)
    assert list((tmp_path / "logs").glob("*.eval"))
