"""One self-contained report.html from a run's manifest, compare.json and training logs."""

from __future__ import annotations

import base64
import io
import json
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path

from jinja2 import Environment, StrictUndefined

from traitdose.compare import pair_key
from traitdose.train import load_train_log


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def _plots(compare: dict, logs: dict[str, list[dict]]) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots = {}
    models = list(compare["models"])
    subsets = [s for s in next(iter(compare["models"].values()), {}) if s != "overall"] + ["overall"]
    if models and subsets:
        fig, ax = plt.subplots(figsize=(10, 3.8))
        width = 0.8 / len(models)
        for i, m in enumerate(models):
            table = compare["models"][m]
            xs, ys, lo, hi = [], [], [], []
            for j, s in enumerate(subsets):
                c = table.get(s)
                if c and c["mean"] is not None:
                    xs.append(j + i * width)
                    ys.append(c["mean"])
                    lo.append(c["mean"] - c["ci_low"])
                    hi.append(c["ci_high"] - c["mean"])
            ax.bar(xs, ys, width, yerr=[lo, hi], capsize=2, label=m)
        ax.set_xticks([j + width * (len(models) - 1) / 2 for j in range(len(subsets))])
        ax.set_xticklabels([s.replace("_", "\n") for s in subsets], fontsize=8)
        ax.set_ylabel("rubric score")
        ax.set_ylim(0, 1)
        ax.legend(fontsize=8)
        ax.set_title("Held-out trait scores (bootstrap CI over items)")
        plots["traits"] = _png(fig)
        plt.close(fig)

    reward_keys = sorted({k for log in logs.values() for e in log for k in e if k.startswith("rewards/") and k.endswith("/mean")})
    if reward_keys:
        fig, axes = plt.subplots(1, len(reward_keys), figsize=(3.2 * len(reward_keys), 2.8), squeeze=False)
        for ax, key in zip(axes[0], reward_keys):
            for arm, log in logs.items():
                pts = [(e["step"], e[key]) for e in log if e.get(key) is not None and e[key] == e[key]]
                if pts:
                    ax.plot(*zip(*pts), marker="o", ms=3, label=arm)
            ax.set_title(key.split("/")[1], fontsize=9)
            ax.set_xlabel("step")
        axes[0][0].set_ylabel("mean reward")
        axes[0][-1].legend(fontsize=7)
        fig.suptitle("Training reward per task kind", fontsize=10)
        plots["rewards"] = _png(fig)
        plt.close(fig)

        fig, ax = plt.subplots(figsize=(5, 2.6))
        for arm, log in logs.items():
            pts = [(e["step"], e["frac_reward_zero_std"]) for e in log if "frac_reward_zero_std" in e]
            if pts:
                ax.plot(*zip(*pts), marker="o", ms=3, label=arm)
        ax.set_ylim(-0.05, 1.05)
        ax.set_xlabel("step")
        ax.set_ylabel("dead-group fraction")
        ax.legend(fontsize=7)
        plots["dead"] = _png(fig)
        plt.close(fig)
    return plots


def _caveats(recipe: dict, compare: dict, n_items: int) -> list[str]:
    lines = [
        f"Each model was evaluated on {n_items} held-out scenarios "
        f"({recipe['evaluation']['epochs']} sample(s) each); CIs and p-values are over these items only "
        "and say nothing about other benchmarks, other seeds or other models.",
        f"One training seed ({recipe['seed']}) per arm: run-to-run variance of RL itself is not in these intervals.",
        f"{recipe['training']['steps']} GRPO steps at dose {recipe['dose']}; the paper used about 200 steps at 5%.",
    ]
    primary = [c for c in compare["comparisons"] if c["reference"] == "baseline" and c["subset"] == "overall"]
    for c in primary:
        changed = compare["changed_responses"][pair_key("baseline", c["arm"])]
        if c["ties"] == c["n"] and changed["changed"]:
            lines.append(
                f"{c['arm']} vs baseline: every item scored the same, yet {changed['changed']} of {changed['n']} "
                "responses differ: the grader did not distinguish them, which is not evidence that training did nothing."
            )
        if c["delta"] is None:
            lines.append(f"{c['arm']} vs baseline: no paired items, no conclusion possible.")
        elif c["ci_low"] <= 0 <= c["ci_high"]:
            lines.append(
                f"{c['arm']} vs baseline: Δ {c['delta']:+.3f}, CI [{c['ci_low']:+.3f}, {c['ci_high']:+.3f}] includes 0 "
                f"(p = {c['p_value']:.3f}, n = {c['n']}): the data do not show a difference."
            )
        else:
            lines.append(
                f"{c['arm']} vs baseline: Δ {c['delta']:+.3f}, CI [{c['ci_low']:+.3f}, {c['ci_high']:+.3f}] "
                f"(p = {c['p_value']:.3f}, n = {c['n']}); check the refusal rates before reading this as an improvement."
            )
    if recipe["judge"]["backend"] == "deterministic":
        lines.append(
            "Scores come from deterministic phrase and pattern checks, not an LLM judge: they measure whether "
            "responses contain the behaviours' surface markers, a coarse proxy for the traits."
        )
    missing = sum(t["overall"]["missing"] for t in compare["models"].values() if "overall" in t)
    if missing:
        lines.append(f"{missing} judgment(s) were missing (failed or unparseable) and are excluded, not scored 0.")
    return lines


def render_report(run_dir: Path) -> Path:
    manifest = json.loads((run_dir / "manifest.json").read_text())
    compare = json.loads((run_dir / "compare.json").read_text())
    recipe = manifest["recipe"]
    logs = {arm: load_train_log(run_dir / "train" / arm / "train_log.jsonl") for arm in recipe["arms"]}
    models = list(compare["models"])
    subsets = ["overall"] + [s for s in next(iter(compare["models"].values()), {}) if s != "overall"]
    n_items = max((t["overall"]["items"] for t in compare["models"].values() if "overall" in t), default=0)
    dead = [
        f"{arm}: {t['result']['mean_dead_group_fraction']:.0%}"
        for arm, t in manifest["training"].items()
        if t.get("result") and (t["result"]["mean_dead_group_fraction"] or 0) > 0.5
    ]
    env = Environment(undefined=StrictUndefined, autoescape=True)
    template = env.from_string((resources.files("traitdose") / "templates" / "report.html").read_text())
    schedule_window = manifest["mixture"]["window_steps"]
    html = template.render(
        recipe=recipe,
        manifest=manifest,
        pair_key=pair_key,
        compare=compare,
        models=models,
        subsets=subsets,
        n_items=n_items,
        window=schedule_window if schedule_window is not None else "—",
        training=manifest["training"],
        overall_rows=[c for c in compare["comparisons"] if c["subset"] == "overall"],
        non_refused_rows=[c for c in compare["comparisons_non_refused"] if c["subset"] == "overall"],
        trait_rows=[c for c in compare["comparisons"] if c["subset"] != "overall"],
        plots=_plots(compare, logs),
        caveats=_caveats(recipe, compare, n_items),
        dead_warning=(
            "Most GRPO groups had zero reward variance (no gradient) in: " + ", ".join(dead) + ". See DESIGN trap 4."
            if dead else None
        ),
        provenance=json.dumps({k: manifest[k] for k in ("recipe_digest", "models", "data", "judge", "packages", "stages")}, indent=2),
        generated_at=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    )
    out = run_dir / "report.html"
    out.write_text(html)
    return out
