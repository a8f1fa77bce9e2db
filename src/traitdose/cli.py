"""The `traitdose` command: a thin typer layer over the library API."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from traitdose.errors import InputError

app = typer.Typer(help="Beneficial-trait RL experiments on open-weight models.", no_args_is_help=True, add_completion=False)
scenarios_app = typer.Typer(help="The trait scenario bank.", no_args_is_help=True)
app.add_typer(scenarios_app, name="scenarios")
console = Console()

RunDir = Annotated[Path, typer.Argument(help="an existing run dir (holds manifest.json)")]
AsJson = Annotated[bool, typer.Option("--json", help="machine-readable output")]


def _fail(error: Exception) -> None:
    console.print(f"[red]error:[/] {error}", highlight=False)
    raise typer.Exit(2)


def _guard(fn):
    """Bad input exits non-zero with its message, never a traceback."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except InputError as e:
            _fail(e)

    return wrapper


@app.command()
@_guard
def spec(as_json: AsJson = False) -> None:
    """The 15 traits (7 held out for evaluation) and 12 domains."""
    from traitdose.spec import load_spec

    s = load_spec()
    if as_json:
        typer.echo(json.dumps({"traits": [t.model_dump() for t in s.traits], "domains": [d.model_dump() for d in s.domains]}, indent=2))
        return
    table = Table(title="traits")
    table.add_column("trait")
    table.add_column("held out")
    table.add_column("definition")
    for t in s.traits:
        table.add_row(t.name, "yes" if t.held_out else "", t.definition)
    console.print(table)
    domains = Table(title="domains")
    domains.add_column("domain")
    domains.add_column("description")
    for d in s.domains:
        domains.add_row(d.name, d.description)
    console.print(domains)


@scenarios_app.command("stats")
@_guard
def scenarios_stats(
    as_json: AsJson = False,
    bank: Annotated[Path | None, typer.Option(help="a scenario bank folder (default: the shipped bank)")] = None,
) -> None:
    """Scenario counts per split and (trait, domain) cell."""
    from traitdose.scenarios import bank_stats, load_bank

    stats = bank_stats(load_bank(bank))
    if as_json:
        typer.echo(json.dumps(stats, indent=2))
        return
    for split, s in stats.items():
        table = Table(title=f"{split}: {s['total']} scenarios, {s['multi_turn']} multi-turn, "
                            f"{len(s['traits'])} traits, {len(s['domains'])} domains")
        table.add_column("trait")
        table.add_column("domain")
        table.add_column("count", justify="right")
        for c in s["cells"]:
            table.add_row(c["trait"], c["domain"], str(c["count"]))
        console.print(table)


def _run(recipe: Path | None, out: Path, force: list[str]) -> None:
    from traitdose.runner import open_run

    run = open_run(out, recipe, console)
    run.run_all(force)


@app.command()
@_guard
def run(
    recipe: Annotated[Path, typer.Argument(help="recipe YAML")],
    out: Annotated[Path, typer.Option("--out", help="run dir; re-running resumes it")],
    force: Annotated[list[str], typer.Option(help="redo a stage and everything after it: prepare, train[:ARM], eval[:MODEL], compare, report")] = [],
) -> None:
    """Run (or resume) a whole experiment: prepare, train every arm, evaluate, compare, report."""
    _run(recipe, out, force)


@app.command()
@_guard
def demo(
    out: Annotated[Path, typer.Option("--out", help="run dir")] = Path("runs/demo"),
    force: Annotated[list[str], typer.Option(help="redo a stage and everything after it")] = [],
) -> None:
    """The built-in small recipe on the embedded default model: CPU, offline, deterministic grading."""
    from traitdose.recipe import builtin_recipe_path

    _run(builtin_recipe_path("demo"), out, force)


@app.command()
@_guard
def train(run_dir: RunDir, arm: Annotated[list[str], typer.Option(help="only these arms")] = []) -> None:
    """Train the arms of an existing run (prepares it first if needed)."""
    from traitdose.runner import open_run

    open_run(run_dir, console=console).train(arm or None)


@app.command("eval")
@_guard
def eval_(run_dir: RunDir, model: Annotated[list[str], typer.Option(help="only these models (base or an arm)")] = []) -> None:
    """Evaluate the base model and trained arms on the held-out trait scenarios."""
    from traitdose.runner import open_run

    open_run(run_dir, console=console).evaluate(model or None)


@app.command()
@_guard
def compare(run_dir: RunDir) -> None:
    """Paired comparisons between evaluated models; writes compare.json."""
    from traitdose.runner import open_run

    open_run(run_dir, console=console).compare()


@app.command()
@_guard
def report(run_dir: RunDir) -> None:
    """Render report.html from the run's manifest and compare.json."""
    from traitdose.runner import open_run

    path = open_run(run_dir, console=console).report()
    console.print(f"wrote {path}")


def main() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    # transformers' deprecation notices (gradient_checkpointing -> activation_checkpointing, raised
    # inside TRL) would bury the progress bars; they say nothing about the run.
    warnings.filterwarnings("ignore", category=FutureWarning)
    app()
