"""Run a recipe of conf/experiment/ to its end and record its headline number beside the
published one in bench/results/reproductions.json; print the README's table.

    .venv/bin/python bench/reproduce.py betavae_dsprites                  # the full recipe
    .venv/bin/python bench/reproduce.py betavae_dsprites --label "shortened, on data=shapes" \\
        data=shapes trainer.max_steps=3000                                 # a shortened one
    .venv/bin/python bench/reproduce.py --table                            # the table only

The recipe's `recipe:` node says which metric is its headline and what was published
(paper, number, protocol). Likelihood recipes (`metric: test/nll_iwae`) are scored by
`src/eval.py` on the best checkpoint with the paper's k = 5000 importance samples
(`--iwae-k` to change). Any overrides after the recipe shorten or move it; the entry
then carries them and the label, and the table says "shortened". Run it alone on the
machine: wall time is part of the record.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "reproductions.json"
RUNS = REPO / "outputs" / "reproductions"
LIKELIHOOD_METRIC = "test/nll_iwae"
#: Headlines only `src/eval.py` measures (eval.json's metrics), with the recipe's `eval` overrides.
EVAL_METRICS = ("fid", "kid_mean", "blank_fraction")


def recipes() -> list[str]:
    return sorted(p.stem for p in (REPO / "conf" / "experiment").glob("*.yaml"))


def recipe_card(name: str) -> dict[str, Any]:
    """The recipe's `recipe:` node, composed as training composes it."""
    sys.path.insert(0, str(REPO / "src"))
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from vaelab.config.resolvers import register_resolvers

    register_resolvers()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", [f"experiment={name}"])
    return OmegaConf.to_container(cfg.recipe, resolve=True)  # type: ignore[return-value]


def hardware() -> str:
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores"


def run(command: list[str]) -> float:
    start = time.monotonic()
    subprocess.run(command, cwd=REPO, check=True)
    return time.monotonic() - start


def reproduce(name: str, overrides: list[str], label: str, iwae_k: int) -> dict[str, Any]:
    card = recipe_card(name)
    stamp = dt.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    run_dir = RUNS / f"{name}_{stamp}"
    train = [sys.executable, "src/train.py", f"experiment={name}", *overrides]
    wall = run([*train, f"hydra.run.dir={run_dir}"])
    summary = json.loads((run_dir / "metrics.json").read_text())
    metric = card["metric"]
    value = summary["metrics"].get(metric)
    commands = [" ".join(["python", *train[1:]])]
    if metric == LIKELIHOOD_METRIC or metric in EVAL_METRICS:
        best = run_dir / "checkpoints" / "best.ckpt"
        evaluate = [
            sys.executable,
            "src/eval.py",
            f"ckpt_path={best}",
            f"eval.iwae_k={iwae_k}",
            *card.get("eval", []),
        ]
        wall += run(evaluate)
        value = json.loads((run_dir / "checkpoints" / "eval.json").read_text())["metrics"][metric]
        commands.append(" ".join(["python", *evaluate[1:]]).replace(str(REPO) + "/", ""))
    return {
        "recipe": name,
        "paper": card["paper"],
        "published": card["published"],
        "metric": metric,
        "published_value": card["value"],
        "value": value,
        "shortened": bool(overrides),
        "label": label or ("full recipe" if not overrides else "shortened"),
        "overrides": overrides,
        "hardware": hardware(),
        "wall_s": round(wall, 1),
        "global_step": summary.get("global_step"),
        "commands": commands,
        "date": dt.date.today().isoformat(),
    }


def read_results() -> dict[str, Any]:
    return json.loads(RESULTS.read_text()) if RESULTS.exists() else {}


def table(results: dict[str, Any]) -> str:
    """The README's Reproductions table: every recipe, run or not yet."""
    rows = [
        "| recipe | paper | published | vaelab | hardware, wall time | command |",
        "|---|---|---|---|---|---|",
    ]
    for name in recipes():
        card = recipe_card(name)
        published = card["published"]
        if card["value"] is not None:
            published = f"{card['metric']} {card['value']:g} ({published})"
        entry = results.get(name)
        if entry is None:
            multirun = "-m " if card.get("multirun") else ""
            command = f"`python src/train.py {multirun}experiment={name}`"
            got, where = "not run yet", ""
        else:
            got = f"{entry['metric']} {entry['value']:.4g}"
            if entry["shortened"]:
                got += f" ({entry['label']})"
            where = f"{entry['hardware']}, {entry['wall_s'] / 60:.1f} min"
            command = "<br>".join(f"`{c}`" for c in entry["commands"])
        rows.append(f"| {name} | {card['paper']} | {published} | {got} | {where} | {command} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipe", nargs="?", choices=recipes())
    parser.add_argument("overrides", nargs="*", help="Hydra overrides that shorten the recipe")
    parser.add_argument("--label", default="", help="what the overrides change, for the table")
    parser.add_argument("--iwae-k", type=int, default=5000)
    parser.add_argument("--table", action="store_true", help="print the table and stop")
    args = parser.parse_intermixed_args()  # options before or after the overrides
    results = read_results()
    if args.recipe and not args.table:
        results[args.recipe] = reproduce(args.recipe, args.overrides, args.label, args.iwae_k)
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
        print(json.dumps(results[args.recipe], indent=2))
    print(table(results))


if __name__ == "__main__":
    main()
