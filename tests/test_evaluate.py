"""The held-out Inspect task on a tiny local model: records, missing judgments, refusal rates."""

from inspect_ai.model import ChatCompletionChoice, ChatMessageAssistant, ModelOutput, ModelUsage, get_model

from traitdose.evaluate import evaluate_model, read_records, select_heldout, summarise, write_records
from traitdose.grading import DeterministicJudge, LLMJudge, RubricGrader
from traitdose.scenarios import load_bank


def test_select_heldout_takes_first_n_per_trait():
    chosen = select_heldout(load_bank().heldout, 2)
    traits = [s.trait for s in chosen]
    assert len(chosen) == 14 and all(traits.count(t) == 2 for t in set(traits))
    assert select_heldout(load_bank().heldout, None) == list(load_bank().heldout)


def test_records_round_trip_with_protocol(tmp_path, tiny_model_dir):
    scenarios = select_heldout(load_bank().heldout, 1)[:2]
    grader = RubricGrader(DeterministicJudge())
    records = evaluate_model(tiny_model_dir, "tiny", scenarios, grader, tmp_path / "logs", max_tokens=6)
    assert [r.item_id for r in records] == [s.id for s in scenarios]
    assert all(r.protocol == grader.protocol_hash and r.score is not None for r in records)
    write_records(tmp_path / "r.jsonl", records)
    assert read_records(tmp_path / "r.jsonl") == records
    assert summarise(records)["overall"]["missing"] == 0


def test_failed_judge_makes_missing_records_not_zeros(tmp_path, tiny_model_dir):
    def unparseable(input, tools, tool_choice, config):
        return ModelOutput(
            model="mockllm/model",
            choices=[ChatCompletionChoice(message=ChatMessageAssistant(content="Looks fine to me."), stop_reason="stop")],
            usage=ModelUsage(input_tokens=1, output_tokens=1, total_tokens=2),
        )

    judge = LLMJudge(get_model("mockllm/model", custom_outputs=unparseable, memoize=False), max_attempts=2)
    scenarios = select_heldout(load_bank().heldout, 1)[:2]
    records = evaluate_model(tiny_model_dir, "tiny", scenarios, RubricGrader(judge), tmp_path / "logs", max_tokens=6)
    assert all(r.score is None and "no valid judgment" in r.missing_reason for r in records)
    summary = summarise(records)["overall"]
    assert summary["missing"] == 2 and summary["mean"] is None
