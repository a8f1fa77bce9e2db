"""Every stage on a tiny random model, on CPU: prepare, train two arms, evaluate, compare, report, resume."""

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from traitdose.cli import app
from traitdose.errors import InputError
from traitdose.recipe import load_recipe
from traitdose.runner import Run


def tiny_recipe(model_dir: Path, **overrides) -> dict:
    recipe = {
        "name": "tiny",
        "seed": 0,
        "policy": {"model": str(model_dir)},
        "arms": ["trait", "baseline"],
        "dose": 0.5,
        "training": {
            "steps": 2, "prompts_per_step": 2, "completions_per_prompt": 2, "max_completion_tokens": 8,
            "learning_rate": 1e-3, "lora": {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]},
            "checkpoint_every": 1,
        },
        "evaluation": {"heldout_limit": 1, "max_tokens": 8},
        "compare": {"bootstrap_samples": 500, "permutations": 500},
    }
    recipe.update(overrides)
    return recipe


def write_recipe(tmp_path: Path, recipe: dict) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


@pytest.fixture
def varying_reward(monkeypatch):
    """A random tiny model earns the same task reward on every completion, so every GRPO group is
    dead and nothing trains; add a length reward that varies within groups to exercise the gradient."""
    import traitdose.train as train_module

    real = train_module.make_reward_funcs

    def with_length(*args, **kwargs):
        def length(prompts, completions, **_):
            return [len(c[-1]["content"]) / 100 for c in completions]

        return [*real(*args, **kwargs), length]

    monkeypatch.setattr(train_module, "make_reward_funcs", with_length)


@pytest.fixture
def hub_calls(monkeypatch):
    """Records every hub download transformers attempts: an offline pipeline must make none."""
    import transformers.utils.hub as hub

    calls = []
    real = hub.hf_hub_download

    def spy(repo_id, *args, **kwargs):
        calls.append(repo_id)
        return real(repo_id, *args, **kwargs)

    monkeypatch.setattr(hub, "hf_hub_download", spy)
    return calls


def test_full_run_then_resume_reuses_everything(tmp_path, tiny_model_dir, varying_reward, hub_calls):
    recipe_path = write_recipe(tmp_path, tiny_recipe(tiny_model_dir))
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", str(recipe_path), "--out", str(out)])
    assert result.exit_code == 0, result.output

    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["stages"]) == {"prepare", "train:trait", "train:baseline", "eval:base", "eval:trait",
                                       "eval:baseline", "compare", "report"}
    counts = {arm: manifest["training"][arm]["counts"] for arm in ("trait", "baseline")}
    for key in ("steps", "prompts", "completions"):
        assert counts["trait"][key] == counts["baseline"][key]
    assert counts["trait"]["trait_prompts"] == 2 and counts["baseline"]["trait_prompts"] == 0
    for arm in ("trait", "baseline"):
        res = manifest["training"][arm]["result"]
        assert res["steps"] == 2
        assert res["merge_max_logit_diff"] < 1e-3  # merged weights reproduce the adapter model
        assert (out / "train" / arm / "adapter" / "adapter_model.safetensors").is_file()
        assert (out / "train" / arm / "merged" / "model.safetensors").is_file()
        log = [json.loads(x) for x in (out / "train" / arm / "train_log.jsonl").read_text().splitlines()]
        assert any("frac_reward_zero_std" in e for e in log)
    for arm, dose in (("trait", 0.5), ("baseline", 0.0)):
        log = [json.loads(x) for x in (out / "train" / arm / "train_log.jsonl").read_text().splitlines()]
        assert [e["dose/trait_fraction"] for e in log if "dose/trait_fraction" in e] == [dose, dose]
    assert manifest["judge"]["hash"] and manifest["models"]["base"]["sha256"]
    assert manifest["models"]["trait"]["sha256"] != manifest["models"]["baseline"]["sha256"]

    compare = json.loads((out / "compare.json").read_text())
    pairs = {(c["reference"], c["arm"]) for c in compare["comparisons"]}
    assert ("baseline", "trait") in pairs and ("base", "trait") in pairs
    assert compare["models"]["base"]["overall"]["items"] == 7  # one held-out scenario per held-out trait
    html = (out / "report.html").read_text()
    assert "Compute matching" in html and "refused" in html and "data:image/png;base64" in html
    assert list((out / "eval" / "logs").glob("*.eval"))
    assert hub_calls == []

    # Resume: nothing is redone, nothing duplicated.
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and "report.html" not in p.name}
    result = CliRunner().invoke(app, ["run", str(recipe_path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    after = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and "report.html" not in p.name}
    assert after == before

    # --force compare redoes compare and report only.
    result = CliRunner().invoke(app, ["run", str(recipe_path), "--out", str(out), "--force", "compare"])
    assert result.exit_code == 0, result.output
    assert (out / "train" / "trait" / "merged" / "model.safetensors").stat().st_mtime_ns == before[out / "train" / "trait" / "merged" / "model.safetensors"]
    assert (out / "compare.json").stat().st_mtime_ns != before[out / "compare.json"]

    # Stage commands on the existing run dir.
    for cmd in (["compare", str(out)], ["report", str(out)], ["eval", str(out)], ["train", str(out)]):
        result = CliRunner().invoke(app, cmd)
        assert result.exit_code == 0, (cmd, result.output)


def test_killed_training_resumes_from_checkpoint(tmp_path, tiny_model_dir):
    recipe = load_recipe(write_recipe(tmp_path, tiny_recipe(tiny_model_dir, arms=["trait"])))
    run = Run(tmp_path / "run", recipe)
    run.prepare()

    # Simulate a kill after step 1: train once, then delete the final checkpoint and outputs.
    run.train()
    arm_dir = tmp_path / "run" / "train" / "trait"
    run.manifest["stages"].pop("train:trait")
    run._save()
    import shutil

    for ckpt in arm_dir.glob("trainer/checkpoint-2"):
        shutil.rmtree(ckpt)
    shutil.rmtree(arm_dir / "merged")
    assert not (arm_dir / "trainer" / "checkpoint-2").exists()

    resumed = Run(tmp_path / "run")
    resumed.train()
    assert resumed.done("train:trait")
    assert (arm_dir / "merged" / "model.safetensors").is_file()
    log = [json.loads(x) for x in (arm_dir / "train_log.jsonl").read_text().splitlines()]
    steps = [e["step"] for e in log if "frac_reward_zero_std" in e]
    assert steps == [1, 2]  # step 1 kept from before the kill, step 2 redone once, none duplicated


def test_changed_recipe_does_not_touch_finished_results(tmp_path, tiny_model_dir):
    recipe = load_recipe(write_recipe(tmp_path, tiny_recipe(tiny_model_dir)))
    Run(tmp_path / "run", recipe).prepare()
    manifest_before = (tmp_path / "run" / "manifest.json").read_text()
    changed = write_recipe(tmp_path, tiny_recipe(tiny_model_dir, seed=1))
    result = CliRunner().invoke(app, ["run", str(changed), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "different recipe" in result.output
    assert (tmp_path / "run" / "manifest.json").read_text() == manifest_before


@pytest.mark.parametrize(
    "recipe_text, message",
    [
        ("name: x\narms: [trait, sideways]\n", "arms"),
        ("name: x\ndose: 1.5\n", "dose"),
        ("name: x\ntraining: {steps: 0}\n", "training.steps"),
        ("name: x\njudge: {backend: llm}\n", "judge"),
        ("name: x\napi_key: sk-123\n", "api_key"),
        ("name: x\ndose: 0.01\ntraining: {steps: 2, prompts_per_step: 2}\n", "no trait prompt"),
        ("name: [unclosed\n", "malformed YAML"),
        ("- just a list\n", "mapping"),
    ],
)
def test_bad_recipe_exits_nonzero_naming_file_and_field(tmp_path, recipe_text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(recipe_text)
    result = CliRunner().invoke(app, ["run", str(path), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "bad.yaml" in result.output and message in result.output
    assert not (tmp_path / "run").exists()


def test_missing_model_and_pickle_only_model_are_refused(tmp_path):
    missing = write_recipe(tmp_path, tiny_recipe(tmp_path / "nowhere", arms=["baseline"]))
    result = CliRunner().invoke(app, ["run", str(missing), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "policy.model" in result.output

    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text("{}")
    (pickled / "pytorch_model.bin").write_bytes(b"not loaded")
    from traitdose.models import resolve_model

    with pytest.raises(InputError, match="pickle"):
        resolve_model(str(pickled))


def test_unreachable_judge_stops_the_run_before_training(tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("LOCAL_API_KEY", "unused")
    recipe = tiny_recipe(tiny_model_dir, judge={"backend": "llm", "model": "openai-api/local/judge",
                                                 "base_url": "http://127.0.0.1:9/v1"})
    result = CliRunner().invoke(app, ["run", str(write_recipe(tmp_path, recipe)), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "judge" in result.output
    assert not (tmp_path / "run" / "train").exists()


def test_stage_command_on_missing_run_dir(tmp_path):
    result = CliRunner().invoke(app, ["compare", str(tmp_path / "none")])
    assert result.exit_code == 2 and "manifest.json" in result.output


def test_public_dataset_tasks_enter_the_mixture_from_a_local_file(tmp_path, tiny_model_dir):
    rows = [{"question": f"Tom has {i} apples and buys 3 more. How many now?", "answer": f"{i}+3={i + 3}\n#### {i + 3}"}
            for i in range(40)]
    data = tmp_path / "gsm8k.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = tiny_recipe(tiny_model_dir, ordinary={"weights": {"arithmetic": 1}, "dataset": "gsm8k",
                                                   "dataset_file": str(data), "dataset_fraction": 0.5})
    run = Run(tmp_path / "run", load_recipe(write_recipe(tmp_path, recipe)))
    run.prepare()
    mixture = [json.loads(x) for x in (tmp_path / "run" / "mixture" / "baseline.jsonl").read_text().splitlines()]
    assert {r["kind"] for r in mixture} == {"dataset", "arithmetic"}
    assert any("Tom has" in r["prompt"][0]["content"] for r in mixture)


def test_bad_dataset_file_names_the_file(tmp_path, tiny_model_dir):
    data = tmp_path / "broken.jsonl"
    data.write_text('{"question": "no answer field"}\n')
    recipe = tiny_recipe(tiny_model_dir, ordinary={"dataset": "gsm8k", "dataset_file": str(data), "dataset_fraction": 0.5})
    result = CliRunner().invoke(app, ["run", str(write_recipe(tmp_path, recipe)), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "broken.jsonl" in result.output
    assert not (tmp_path / "run" / "train").exists()
