"""Every table of measurements in the README and the docs, written from bench/results/.

    python bench/report.py            # rewrite every generated table in README.md and docs/
    python bench/report.py --check    # exit 1, naming each table that differs from its file

A page asks for a table with a pair of markers, each on its own line:

    <!-- report: speed_mlp -->
    (what this script writes)
    <!-- end report -->

Each table is a function of the results files below (`TABLES`), and each ends with a
line naming the file it was read from, when it was measured, on what machine and, where
the file records one, the hand-loop reference (the epoch time of `bench/speed.py`'s
hand-written loop in the same hour: this machine's speed drifts by 2x from hour to hour,
and the loop says which hour a number came from). A number on a page therefore always
has a file behind it, and `tests/test_report.py` fails when a page differs from what
this script would write now. A file that holds several runs is shown run by run, or as
the run it names as recorded, never as a best-of picked here.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results"

if str(BENCH) not in sys.path:  # the other benchmarks' own table functions
    sys.path.insert(0, str(BENCH))

BLOCK = re.compile(
    r"^<!-- report: (?P<name>[\w/-]+) -->\n(?P<body>.*?)^<!-- end report -->$",
    re.MULTILINE | re.DOTALL,
)
NOT_MEASURED = "Not measured yet: `{file}` holds no `{part}`. Run `{command}` to measure it."


class Missing(Exception):
    """A table's results file (or the part of it the table reads) does not exist yet."""


def read(name: str) -> dict[str, Any]:
    path = RESULTS / name
    if not path.is_file():
        raise Missing(f"Not measured yet: there is no `bench/results/{name}`.")
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def part(file: str, key: str, command: str) -> dict[str, Any]:
    data = read(file)
    if key not in data:
        raise Missing(NOT_MEASURED.format(file=f"bench/results/{file}", part=key, command=command))
    value: dict[str, Any] = data[key]
    return value


# ------------------------------------------------------------------ formatting
def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def seconds(value: float) -> str:
    if value >= 100:
        minutes, rest = divmod(round(value), 60)
        return f"{value:.0f} s ({minutes} min {rest:02d} s)"
    return f"{value:.2f} s" if value < 10 else f"{value:.1f} s"


def ms(value: float) -> str:
    return f"{value:.1f} ms"


def ratio(value: float) -> str:
    return f"{value:.2f}×"


def share(value: float) -> str:
    return f"{100 * value:.1f} %"


def score(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def machine_words(machine: dict[str, Any] | str | None) -> str:
    """A results file's machine record, as a reader wants it."""
    if machine is None:
        return "a machine the file does not describe"
    if isinstance(machine, str):
        return machine
    words = []
    if machine.get("gpu"):
        words.append(str(machine["gpu"]))
    cpu = machine.get("cpu")
    cpus = machine.get("cpus", machine.get("cpu_count"))
    if cpu or cpus:
        words.append(f"{cpu or 'CPU'}, {cpus} cores" if cpus else str(cpu))
    if machine.get("torch"):
        words.append(f"torch {machine['torch']}")
    if not words and machine.get("platform"):
        words.append(str(machine["platform"]))
    return ", ".join(words) or "a machine the file does not describe"


def source(
    file: str,
    command: str,
    *,
    when: str | None = None,
    machine: dict[str, Any] | str | None = None,
    commit: str | None = None,
    hand_loop: str | None = None,
    note: str | None = None,
) -> str:
    """The line under a table: which file, written by which command, when, on what."""
    parts = [f"From `bench/results/{file}`, written by `{command}`"]
    parts.append(f"measured {when}" if when else "the file records no date")
    parts.append(f"on {machine_words(machine)}")
    if commit:
        parts.append(f"at commit {commit}")
    text = "*" + "; ".join(parts) + "."
    if hand_loop:
        text += f" Hand-loop reference: {hand_loop}."
    if note:
        text += f" {note}"
    return text + "*"


def stamped(record: dict[str, Any], fallback: dict[str, Any] | None = None) -> dict[str, Any]:
    """`when`, `machine` and `commit` of a record written with bench/record.py's stamp()
    (older files: the file's own top-level machine, and no date)."""
    return {
        "when": record.get("measured_at"),
        "machine": record.get("machine", (fallback or {}).get("machine")),
        "commit": record.get("commit"),
    }


# ------------------------------------------------------------------ speed.json
SPEED = "speed.json"


def speed_mlp() -> str:
    mlp = part(SPEED, "mlp_fashion_mnist", "python bench/speed.py --parts mlp")
    protocol = read(SPEED)["protocol"]
    paired = f"{ratio(mlp['median_paired_ratio'])} / {ratio(mlp['median_paired_ratio_fused'])}"
    loops = [  # (label, key in the record, paired ratios: only vaelab's are recorded)
        ("hand-written loop, `torch.optim.Adam`", "hand", "—"),
        ("hand-written loop, `Adam(fused=True)`", "hand_fused", "—"),
        ("vaelab, its defaults (`src/train.py`)", "vaelab", paired),
    ]
    body = [
        [
            label,
            seconds(mlp[f"{key}_epoch_s"]),
            f"{mlp[f'{key}_samples_per_s']:,.0f}",
            ratio(mlp[f"{key}_epoch_s"] / mlp["hand_epoch_s"]),
            ratio(mlp[f"{key}_epoch_s"] / mlp["hand_fused_epoch_s"]),
            paired_cell,
        ]
        for label, key, paired_cell in loops
    ]
    verdict = mlp["ratio_vaelab_to_hand"]
    words = "slower than" if verdict > 1 else "faster than" if verdict < 1 else "as fast as"
    summary = (
        f"vaelab's epoch takes {ratio(verdict)} the plain-`Adam` hand loop's ({words} it) and "
        f"{ratio(mlp['ratio_vaelab_to_hand_fused'])} the fused-Adam loop's; Lightning's loop "
        f"adds {mlp['loop_overhead_ms_per_step']:.2f} ms a step over the fused loop. Peak "
        f"memory of the process (all three loops): {mlp['peak_rss_mb']:.0f} MB."
    )
    return "\n\n".join(
        [
            table(
                [
                    "loop",
                    "epoch (p20)",
                    "images/s",
                    "÷ `Adam` loop",
                    "÷ fused loop",
                    "paired median ÷ `Adam` / ÷ fused",
                ],
                body,
            ),
            summary,
            source(
                SPEED,
                "python bench/speed.py --parts mlp",
                **stamped(mlp, read(SPEED)),
                note=f"{protocol['repeats']} interleaved repeats × {protocol['epochs']} epochs "
                f"of {protocol['n_train']:,} images, batch {protocol['batch']}; "
                f"{protocol['statistic']}.",
            ),
        ]
    )


def speed_images() -> str:
    images = part(SPEED, "images_3x32x32", "python bench/speed.py --parts images")
    conv = images["conv"]["epoch_s"]
    labels = {
        "conv": "conv preset, fp32",
        "conv_bf16": "conv preset, `trainer.precision=bf16-mixed`",
        "conv_compile": "conv preset, `model.compile=true` (after its compiling epoch)",
        "resnet": "resnet preset, fp32",
    }
    rows = [
        [
            label,
            seconds(images[key]["epoch_s"]),
            f"{images[key]['samples_per_s']:,.0f}",
            ratio(images[key]["epoch_s"] / conv),
        ]
        for key, label in labels.items()
        if key in images
    ]
    return "\n\n".join(
        [
            table(
                ["configuration, 3×32×32 images", "epoch (p20)", "images/s", "÷ conv fp32"], rows
            ),
            source(
                SPEED,
                "python bench/speed.py --parts images",
                **stamped(images, read(SPEED)),
                note=f"Peak memory {images['peak_rss_mb']:.0f} MB.",
            ),
        ]
    )


def speed_extras() -> str:
    data = read(SPEED)
    rows = []
    if "quality" in data:
        q = data["quality"]
        rows.append(
            [
                f"test −ELBO after {q['epochs']} epochs (nats): hand loop / fused / vaelab",
                f"{q['hand_test_nelbo']:.2f} / {q['hand_fused_test_nelbo']:.2f} / "
                f"{q['vaelab_test_nelbo']:.2f}",
            ]
        )
    if "denormal" in data:
        d = data["denormal"]
        n = len(d["epochs_s"]["flushed"])
        rows.append(
            [
                f"hand loop with subnormals flushed to zero, speed-up over {n} epochs "
                "(last epoch / all)",
                f"{ratio(d['last_epoch_speedup'])} / {ratio(d['total_speedup'])}",
            ]
        )
    if "startup" in data:
        s = data["startup"]
        rows.append(["`python src/train.py --help`", seconds(s["help_s"])])
        rows.append(["command to first training step", seconds(s["command_to_first_step_s"])])
    if not rows:
        raise Missing(
            NOT_MEASURED.format(
                file="bench/results/speed.json",
                part="quality, denormal or startup",
                command="python bench/speed.py --parts quality,denormal,startup",
            )
        )
    dates = "; ".join(
        f"{part} measured {data[key].get('measured_at', 'on a date the file does not record')}"
        for key, part in (
            ("quality", "quality"),
            ("denormal", "subnormals"),
            ("startup", "start-up"),
        )
        if key in data
    )
    return "\n\n".join(
        [
            table(["measured", "value"], rows),
            source(
                SPEED,
                "python bench/speed.py --parts quality,denormal,startup",
                **stamped(data.get("startup", {}), data),
                note=f"Each part is its own run: {dates}.",
            ),
        ]
    )


def options(group: str) -> Callable[[], str]:
    """The per-option speed table of one config group."""

    def render() -> str:
        measured = part(SPEED, "options", "python bench/speed.py --parts options")
        if group not in measured:
            raise Missing(
                NOT_MEASURED.format(
                    file="bench/results/speed.json",
                    part=f"options.{group}",
                    command="python bench/speed.py --parts options",
                )
            )
        import speed

        entry = measured[group]
        protocol = entry["protocol"]
        rows = [
            [
                f"`{' '.join([f'{group}={name}', *speed.companions(group, name)])}`",
                ms(row["ms_per_step"]),
                ratio(row["relative"]),
            ]
            for name, row in sorted(entry["options"].items(), key=lambda kv: kv[1]["relative"])
        ]
        return "\n\n".join(
            [
                table(
                    ["option", "training step", f"÷ `{group}={protocol['baseline']}`"],
                    rows,
                ),
                source(
                    SPEED,
                    "python bench/speed.py --parts options",
                    **stamped(entry if "measured_at" in entry else measured, read(SPEED)),
                    note=f"Data: {protocol['data']}; model: {protocol['model']}; batch "
                    f"{protocol['batch']}, {protocol['batches_per_epoch']} steps an epoch, "
                    f"{protocol['epochs']} epochs × {protocol['repeats']} interleaved repeats; "
                    f"{protocol.get('statistic', 'p20 of epoch time over its steps')}.",
                ),
            ]
        )

    return render


def speed_gpu() -> str:
    files = sorted(RESULTS.glob("gpu_*.json"))
    if not files:
        return (
            "Not measured on a GPU: there is no `bench/results/gpu_*.json` yet. "
            "`bash bench/gpu.sh` on a machine with a CUDA device writes one."
        )
    blocks = []
    for path in files:
        data = json.loads(path.read_text())
        rows = [
            [
                run["name"],
                seconds(run["epoch_s"]) if run.get("epoch_s") is not None else "—",
                f"{run['samples_per_s']:,.0f}" if run.get("samples_per_s") else "—",
                run.get("note", ""),
            ]
            for run in data["runs"]
        ]
        blocks.append(table(["run", "epoch (p20)", "images/s", "note"], rows))
        blocks.append(source(path.name, "bash bench/gpu.sh", **stamped(data)))
    return "\n\n".join(blocks)


# ------------------------------------------------------------------ other benchmarks
def step_overhead() -> str:
    data = read("step_overhead.json")
    labels = {
        "bare": "bare step (objective, backward, fused Adam) on batches made beforehand",
        "hand": "hand loop: the same step on the training loader's batches",
        "trainer_bare": "`Trainer.fit`, no callbacks or loggers",
        "trainer": "`Trainer.fit` as `src/train.py` builds it (default callbacks and loggers)",
    }
    summary = data["summary"]
    rows = [
        [
            label,
            ms(summary[key]["step_ms"]),
            ms(summary[key]["fetch_ms"]) if "fetch_ms" in summary[key] else "—",
            ratio(summary[key]["step_vs_bare_paired_median"]),
        ]
        for key, label in labels.items()
    ]
    return "\n\n".join(
        [
            table(["pass", "step", "fetching the next batch", "step ÷ bare step (paired)"], rows),
            source(
                "step_overhead.json",
                "python bench/step_overhead.py",
                when=data.get("measured_at"),
                machine=f"the 2-core CPU machine, torch {data['torch']}, "
                f"Lightning {data['lightning']}, {data['threads']} threads",
                note=f"{data['repeats']} interleaved repeats of {data['steps_per_pass']} steps "
                "per pass; the median of each pass's median.",
            ),
        ]
    )


def step_profile() -> str:
    data = read("step_profile.json")
    first = data["first_layer"]
    rows = [
        ["training step, first layer dense", ms(data["step_ms"]["dense"])],
        [
            "training step, first layer gathered (`SparseInputLinear`)",
            ms(data["step_ms"]["gathered"]),
        ],
        [
            "speed-up of the step (p50 of passes / paired median)",
            f"{ratio(data['step_speedup'])} / {ratio(data['step_speedup_paired_median'])}",
        ],
        [
            "share of a gathered step: matrix products / gather / Adam / the rest",
            " / ".join(
                share(data[f"share_{k}"]) for k in ("matmul", "gather", "optimiser", "other")
            ),
        ],
        [
            f"first layer alone at {share(first['ink_fraction'])} ink: dense / gathered",
            f"{ms(first['dense_ms'])} / {ms(first['gathered_ms'])}",
        ],
    ]
    density = [
        [share(row["density"]), ms(row["dense_ms"]), ms(row["gathered_ms"])]
        for row in data["first_layer_by_density"]
    ]
    return "\n\n".join(
        [
            table(["measured (batch of 128, the default model)", "value"], rows),
            table(
                ["non-zero inputs (random binary batch)", "dense layer", "gathered layer"], density
            ),
            source(
                "step_profile.json",
                "python bench/step_profile.py",
                **stamped(data),
                note="The layer gathers below "
                f"`model.encoder.sparse_below={data['sparse_below']}` non-zero inputs.",
            ),
        ]
    )


def data_loading() -> str:
    data = read("data_loading.json")
    labels = {
        "batch_loader": "vaelab's `BatchLoader`",
        "plain_index_select": "index-select of a shuffled batch, by hand",
        "plain_slicing": "fancy-index slicing, by hand",
        "contiguous_slicing": "contiguous slices (no shuffle)",
        "dataloader_tensordataset": "`DataLoader` over a `TensorDataset`",
    }
    base = data["seconds_per_epoch"]["plain_index_select"]["p10"]
    rows = [
        [
            label,
            ms(1e3 * data["seconds_per_epoch"][key]["p10"]),
            ratio(data["seconds_per_epoch"][key]["p10"] / base),
        ]
        for key, label in labels.items()
    ]
    shape = "×".join(str(n) for n in data["data"]["shape"])
    return "\n\n".join(
        [
            table(["loader", "one epoch (p10)", "÷ index-select by hand"], rows),
            source(
                "data_loading.json",
                "python bench/data_loading.py",
                **stamped(data),
                note=f"{data['benchmark']}: {shape} {data['data']['dtype']}, batch "
                f"{data['data']['batch_size']}, {data['repeats']} repeats. Target: "
                f"{data['target']} ({'met' if data['target_met'] else 'not met'}).",
            ),
        ]
    )


def cache_verify() -> str:
    data = read("cache_verify.json")
    rows = [
        [
            "checksum of every cached array (first open in a process)",
            seconds(data["verify_median_s"]),
        ],
        ["one epoch of the hand-written MLP loop", seconds(data["epoch_median_s"])],
        [
            "checksum ÷ epoch (target)",
            f"{share(data['ratio'])} (≤ {share(data['target_ratio'])})",
        ],
    ]
    return "\n\n".join(
        [
            table(["measured (medians)", "value"], rows),
            source(
                "cache_verify.json",
                "python bench/cache_verify.py",
                **stamped(data),
                note=f"{data['what']}; {data['cache_bytes'] / 1e6:.0f} MB of cache.",
            ),
        ]
    )


def sweep_parallel() -> str:
    data = read("sweep_parallel.json")
    rows = [
        [
            f"{data['jobs']} jobs one after the other",
            seconds(data["sequential_s"]),
            "1",
        ],
        [
            f"{data['jobs']} jobs, 2 at a time (`hydra/launcher=parallel hydra.launcher.n_jobs=2`)",
            seconds(data["parallel_2_s"]),
            f"{ratio(data['ratio_parallel_to_sequential'])} "
            f"(paired median {ratio(data['median_paired_ratio'])})",
        ],
    ]
    return "\n\n".join(
        [
            table(["sweep of small MLP jobs", "wall time (median)", "÷ sequential"], rows),
            source(
                "sweep_parallel.json",
                "python bench/sweep_parallel.py",
                **stamped(data),
                note=f"{data['repeats']} interleaved repeats.",
            ),
        ]
    )


def disentanglement_protocol() -> str:
    data = read("disentanglement.json")
    stages = list(data["fast"]["stages"])
    rows = []
    for stage in stages:
        cells = [f"`{stage}`"]
        for protocol in ("fast", "dlib"):
            entry = data[protocol]["stages"][stage]
            cells.append(f"{seconds(entry['seconds'])} ({entry['encoded']:,} encoded)")
        rows.append(cells)
    rows.append(
        [
            "**whole protocol**",
            *(
                f"**{seconds(data[p]['wall_s'])}** ({data[p]['encoded']:,} encoder passes, "
                f"{seconds(data[p]['encoder_s'])} of them)"
                for p in ("fast", "dlib")
            ),
        ]
    )
    model = data["model"]
    return "\n\n".join(
        [
            table(["stage", "`fast`", "`dlib`"], rows),
            source(
                "disentanglement.json",
                "python bench/disentanglement.py",
                **stamped(data),
                note=f"Every metric for one {model['preset']}-preset model with "
                f"{model['latent_dim']} latents trained {model['train_steps']:,} steps on "
                f"{model['data']}, encoding {data['encode_batch_size']} observations at a time.",
            ),
        ]
    )


def dci_rounds() -> str:
    data = read("dci_rounds.json")
    rounds = [str(r) for r in data["rounds"]]
    rows = []
    for case, by_rounds in data["cases"].items():
        # A case is a checkpoint's path (outputs/bench_default/<run>/...) or a named stand-in.
        if "/" in case:
            label = f"default-experiment checkpoint {case.split('/')[2]}"
        else:
            label = "codes that are the factors plus noise"
        rows.append([label, *(score(by_rounds[r]["dci"]) for r in rounds)])
    counts = data["fast_counts"]
    return "\n\n".join(
        [
            table(["codes", *(f"{r} rounds" for r in rounds)], rows),
            source(
                "dci_rounds.json",
                "python bench/dci_rounds.py",
                **stamped(data),
                note=f"DCI with the fast protocol's {counts['n_train']:,} / {counts['n_test']:,} "
                "points, each number of boosting rounds on the same codes.",
            ),
        ]
    )


def reproductions() -> str:
    import reproduce

    return "\n\n".join(
        [
            reproduce.table(reproduce.read_results()),
            "*From `bench/results/reproductions.json`, written by `python bench/reproduce.py "
            "<recipe>`; each row's date and hardware are the file's. The full recipes need "
            "their datasets and, for their step counts, a GPU: a row that says `not run yet` "
            "has never been run to its end.*",
        ]
    )


def test_suite() -> str:
    import test_suite as suite

    results = read("test_suite.json")
    return "\n\n".join(
        [
            suite.table(results),
            "*From `bench/results/test_suite.json`, written by `python bench/test_suite.py`; "
            "each row names its commit and date; every run alone on the project's 2-core "
            "machine.*",
        ]
    )


# ------------------------------------------------------------------ default experiment
def _blank_iou_rows(trials: list[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for trial in trials:
        shapes = trial.get("recon_iou_per_shape", {})
        rows.append(
            [
                " ".join(f"`{o}`" for o in trial["overrides"]) or "the default of the day",
                share(trial["prior_blank_fraction"])
                if trial.get("prior_blank_fraction") is not None
                else "—",
                score(trial.get("recon_iou")),
                " / ".join(score(shapes.get(s)) for s in ("square", "ellipse", "heart")),
                " / ".join(score(trial.get(f"test/{m}")) for m in ("mig", "factor_vae", "dci")),
                f"{trial['test/nelbo']:.1f}" if trial.get("test/nelbo") is not None else "—",
                seconds(trial["wall_s"]) if trial.get("wall_s") else "—",
            ]
        )
    return rows


TRIAL_HEADER = [
    "overrides",
    "blank prior samples",
    "IoU",
    "square / ellipse / heart",
    "MIG / FactorVAE / DCI",
    "test −ELBO",
    "wall",
]


def default_experiment() -> str:
    from default_experiment import TARGETS

    data = read("default_experiment.json")
    scores = data["scores"]
    shapes = data["recon_iou_per_shape"]
    values = {
        "blank": share(data["prior_blank_fraction"]),
        "iou": score(data["recon_iou"]),
        "shapes": " / ".join(score(shapes[s]) for s in ("square", "ellipse", "heart")),
        "mig": score(scores["test/mig"]),
        "factor_vae": score(scores["test/factor_vae"]),
        "wall": seconds(data["wall_s"]),
    }
    met = {
        "blank": data["prior_blank_fraction"] <= TARGETS["blank"],
        "iou": data["recon_iou"] >= TARGETS["iou"],
        "shapes": min(shapes.values()) >= TARGETS["iou_per_shape"],
        "mig": scores["test/mig"] >= TARGETS["mig"],
        "factor_vae": scores["test/factor_vae"] >= TARGETS["factor_vae"],
        "wall": data["wall_s"] <= TARGETS["wall_s"],
    }
    labels = {
        "blank": (
            "blank prior samples (of 512; under 20 pixels above 0.5)",
            f"≤ {share(TARGETS['blank'])}",
        ),
        "iou": ("IoU of thresholded reconstructions (2,000 fresh shapes)", f"≥ {TARGETS['iou']}"),
        "shapes": ("— square / ellipse / heart", f"≥ {TARGETS['iou_per_shape']} each"),
        "mig": ("MIG (fast protocol)", f"≥ {TARGETS['mig']}"),
        "factor_vae": ("FactorVAE score (fast protocol)", f"≥ {TARGETS['factor_vae']}"),
        "wall": ("wall time, command to end", f"≤ {seconds(TARGETS['wall_s'])}"),
    }
    rows = [
        [labels[k][0], labels[k][1], values[k], "met" if met[k] else "**not met**"] for k in labels
    ]
    rows.append(["test −ELBO (nats)", "", f"{scores['test/nelbo']:.2f}", ""])
    rows.append(
        [
            "DCI / SAP / β-VAE score (fast protocol)",
            "",
            " / ".join(score(scores[f"test/{m}"]) for m in ("dci", "sap", "beta_vae")),
            "",
        ]
    )
    temps = data.get("prior_blank_fraction_by_temperature", {})
    for temperature, fraction in sorted(temps.items()):
        rows.append([f"blank samples at temperature {temperature}", "", share(fraction), ""])
    hand = data.get("hand_loop_epoch_s", {})
    reference = (
        " and ".join(f"{seconds(v)} an epoch {k}" for k, v in hand.items()) if hand else None
    )
    return "\n\n".join(
        [
            table(["measured on the best checkpoint", "target", "value", ""], rows),
            source(
                "default_experiment.json",
                "python bench/default_experiment.py --hand-loop",
                when=data.get("measured_at"),
                machine=data.get("machine", "the project's 2-core CPU machine"),
                hand_loop=f"`bench/speed.py`'s hand loop took {reference}" if reference else None,
                note=f"{data['global_step']:,} optimiser steps; overrides: "
                f"{' '.join(data['overrides']) or 'none (the default command)'}.",
            ),
        ]
    )


def disentangling_time() -> str:
    data = read("disentangling_time.json")
    blocks = []
    for run in data["runs"]:
        label = " ".join(f"`{o}`" for o in run["overrides"]) or "the default command"
        rows = [
            [
                str(point["epochs"]),
                seconds(point["train_s"]),
                score(point["mig"]),
                score(point["factor_vae"]),
                score(point["dci"]),
                f"{point['nelbo']:.1f}",
            ]
            for point in run["points"]
        ]
        blocks.append(f"**{label}**")
        blocks.append(
            table(["epochs", "training time", "MIG", "FactorVAE", "DCI", "test −ELBO"], rows)
        )
    blocks.append(
        source(
            "disentangling_time.json",
            "python bench/disentangling_time.py",
            when=data.get("measured_at"),
            machine=data.get("machine", "the project's 2-core CPU machine"),
            note="Each checkpoint scored with the fast protocol after training.",
        )
    )
    return "\n\n".join(blocks)


def trials() -> str:
    blocks = []
    for path in sorted(RESULTS.glob("default_experiment_trials_*.json")):
        data = json.loads(path.read_text())
        blocks.append(f"**`bench/results/{path.name}`.** {data['note']}")
        blocks.append(table(TRIAL_HEADER, _blank_iou_rows(data["trials"])))
    if not blocks:
        raise Missing(
            "Not measured yet: there is no `bench/results/default_experiment_trials_*.json`."
        )
    return "\n\n".join(blocks)


def speed_ab() -> str:
    blocks = []
    for path in sorted(RESULTS.glob("speed_ab_*.json")):
        data = json.loads(path.read_text())
        if "comparison" in data:  # bench/ab.py
            rows = [
                [
                    f"`{key}`",
                    f"{v['before']:.3f}",
                    f"{v['after']:.3f}",
                    ratio(v["after_over_before"]),
                ]
                for key, v in data["comparison"].items()
            ]
            blocks.append(
                f"**`bench/results/{path.name}`** ({data['when']}, {data['before']} → "
                f"{data['after']}; {data['protocol']['order']}, {data['protocol']['rounds']} "
                f"rounds; {data['protocol']['statistic']})"
            )
            blocks.append(table(["measured", "before", "after", "after ÷ before"], rows))
        elif "runs" in data:  # the A/B of 2026-12-02, run by hand
            rows = []
            for label in ("before", "after"):
                for i, run in enumerate(data["runs"][label], 1):
                    rows.append(
                        [
                            f"{label} ({data[f'{label}_commit']}), run {i}",
                            seconds(run["hand_epoch_s"]),
                            seconds(run["hand_fused_epoch_s"]),
                            seconds(run["vaelab_epoch_s"]),
                            ratio(run["ratio_vaelab_to_hand"]),
                            ratio(run["ratio_vaelab_to_hand_fused"]),
                        ]
                    )
            blocks.append(f"**`bench/results/{path.name}`** ({data['date']}; {data['protocol']})")
            blocks.append(
                table(
                    ["run", "hand loop", "fused loop", "vaelab", "÷ hand", "÷ fused"],
                    rows,
                )
            )
        else:  # one bench/speed.py run kept as a side of an older A/B
            mlp = data["mlp_fashion_mnist"]
            blocks.append(f"**`bench/results/{path.name}`** (one `bench/speed.py --parts mlp` run)")
            blocks.append(
                table(
                    ["hand loop", "fused loop", "vaelab", "÷ hand", "÷ fused"],
                    [
                        [
                            seconds(mlp["hand_epoch_s"]),
                            seconds(mlp["hand_fused_epoch_s"]),
                            seconds(mlp["vaelab_epoch_s"]),
                            ratio(mlp["ratio_vaelab_to_hand"]),
                            ratio(mlp["ratio_vaelab_to_hand_fused"]),
                        ]
                    ],
                )
            )
    return "\n\n".join(blocks)


# ------------------------------------------------------------------ priors, samplers
PRIORS = "priors.json"
SAMPLERS = "samplers.json"


def _study_table(
    file: str,
    default: str,
    kl: Callable[[dict[str, Any]], str],
    active: Callable[[dict[str, Any]], str],
    headers: tuple[str, str],
    note: str,
) -> str:
    """A variant study's table (bench/variant_study.py): per variant its test NLL and
    −ELBO (mean ± sd over seeds), its KL and active units as `kl` and `active` write
    them, best first; `default` labels the variant with no overrides."""
    data = read(file)
    setting = data["setting"]
    ranked = sorted(data["table"].items(), key=lambda kv: kv[1]["nll_iwae"])
    rows = [
        [
            f"`{' '.join(data['variants'][name]) or default}`",
            _spread(row, "nll_iwae"),
            _spread(row, "nelbo"),
            kl(row),
            active(row),
            str(row["seeds"]),
        ]
        for name, row in ranked
    ]
    head = ["variant", f"test NLL (IWAE, k = {setting['iwae_k']})", "test −ELBO", *headers]
    return "\n\n".join(
        [
            table([*head, "seeds"], rows),
            source(
                file,
                data.get("command", f"python bench/{file.removesuffix('.json')}.py"),
                **stamped(data),
                note=f"Dynamically binarised Fashion-MNIST, the whole test split; "
                f"`{' '.join(setting['overrides'])}`, {setting['epochs']} epochs each; {note}",
            ),
        ]
    )


def _spread(row: dict[str, Any], key: str) -> str:
    return f"{row[key]:.2f} ± {row[key + '_std']:.2f}"


def priors() -> str:
    """Test NLL, ELBO, KL and active units of each prior/posterior variant, over seeds."""
    return _study_table(
        PRIORS,
        "prior=normal posterior=gaussian",
        lambda row: f"{_spread(row, 'kl')} ({row['kl_estimate']})",
        lambda row: f"{row['active_units']:.1f}",
        ("KL", "active units"),
        "nats, mean ± sample sd over seeds, best first.",
    )


HIERARCHY = "hierarchy.json"


def hierarchy() -> str:
    """Test NLL, ELBO, KL and active units per latent group, one group against two."""

    def per_group(key: str, digits: int) -> Callable[[dict[str, Any]], str]:
        def cell(row: dict[str, Any]) -> str:
            if f"{key}/z1" not in row:
                return f"{row[key]:.{digits}f}"
            return " + ".join(f"{row[f'{key}/{g}']:.{digits}f}" for g in ("z1", "z2"))

        return cell

    return _study_table(
        HIERARCHY,
        "latent=gaussian",
        per_group("kl", 2),
        per_group("active_units", 1),
        ("KL (z1 + z2)", "active units (z1 + z2)"),
        "nats, mean ± sample sd over seeds (KL and active units: means), best first.",
    )


CONDITIONAL = "conditional.json"


def conditional() -> str:
    """A conditional VAE beside the unconditional one: bounds, KL, active units, and how
    often its samples are recognised as the class they were drawn for."""
    data = read(CONDITIONAL)
    row = data["table"].get("conditional", {})
    agreement = (
        f"Samples of the conditional model, {row['seeds']} seeds: "
        f"{row['sample_class_agreement']:.1%} ± {row['sample_class_agreement_std']:.1%} "
        "are labelled as the class they were drawn for by a classifier that labels "
        f"{row['classifier_test_accuracy']:.1%} of the real test images correctly "
        f"(the worst class: {row['worst_class_agreement']:.1%} on average)."
        if "sample_class_agreement" in row
        else "No conditional run has been measured."
    )
    return "\n\n".join(
        [
            _study_table(
                CONDITIONAL,
                "conditional=false",
                lambda r: _spread(r, "kl"),
                lambda r: f"{r['active_units']:.1f}",
                ("KL", "active units"),
                "nats, mean ± sample sd over seeds, best first. The conditional bound is "
                "of −log p(x|y), the unconditional one of −log p(x).",
            ),
            agreement,
        ]
    )


VQ = "vq.json"


def vq() -> str:
    """A VQ-VAE's reconstruction, bounds and codebook use, over seeds."""
    command = "python bench/vq.py"
    data = read(VQ)
    setting = data["setting"]
    row = data["table"]["vq"]

    def spread(key: str, digits: int = 2) -> str:
        return f"{row[key]:.{digits}f} ± {row[key + '_std']:.{digits}f}"

    rows = [
        ["test −log p(x\\|z_q)", spread("recon")],
        ["test −ELBO, uniform prior over the codes", spread("nelbo")],
        ["test bound with the learned code prior (`nll_pair`)", spread("nll_pair")],
        ["codebook perplexity on the test codes (of 128)", spread("perplexity", 1)],
        ["codes used on the test split", f"{row['codes_used']:.0%} ± {row['codes_used_std']:.0%}"],
        ["blank samples of the learned prior", f"{row['blank_fraction']:.1%}"],
    ]
    return "\n\n".join(
        [
            table(["", "mean ± sd over seeds (bounds in nats)"], rows),
            source(
                VQ,
                data.get("command", command),
                **stamped(data),
                note=f"Dynamically binarised Fashion-MNIST, the whole test split; "
                f"`{' '.join(setting['overrides'])} {' '.join(data['variants']['vq'])}`, "
                f"{setting['epochs']} epochs each, {row['seeds']} seeds; the code prior "
                "fitted from each checkpoint (`sampler=code_prior`, its defaults).",
            ),
        ]
    )


def samplers() -> str:
    """Blank samples of one default-experiment checkpoint, per sampler."""
    command = "python bench/samplers.py"
    data = read(SAMPLERS)
    rows = [
        [
            f"`sampler={name}`",
            share(row["blank_fraction"]),
            "—" if row["fit_s"] is None else seconds(row["fit_s"]),
            f"{row['n_samples']:,}",
        ]
        for name, row in sorted(data["samplers"].items(), key=lambda kv: kv[1]["blank_fraction"])
    ]
    threshold = data["threshold"]
    return "\n\n".join(
        [
            table(["sampler", "blank samples", "fit time", "samples"], rows),
            source(
                SAMPLERS,
                data.get("command", command),
                **stamped(data),
                note=f"One checkpoint of the default experiment (`{data['checkpoint']}`); "
                f"blank: fewer than {threshold['min_pixels']} pixels above {threshold['pixel']}.",
            ),
        ]
    )


TABLES: dict[str, Callable[[], str]] = {
    "speed_mlp": speed_mlp,
    "speed_images": speed_images,
    "speed_extras": speed_extras,
    "speed_gpu": speed_gpu,
    "options/objective": options("objective"),
    "options/model": options("model"),
    "options/likelihood": options("likelihood"),
    "options/prior": options("prior"),
    "options/posterior": options("posterior"),
    "options/latent": options("latent"),
    "options/conditional": options("conditional"),
    "priors": priors,
    "hierarchy": hierarchy,
    "vq": vq,
    "conditional": conditional,
    "samplers": samplers,
    "step_overhead": step_overhead,
    "step_profile": step_profile,
    "data_loading": data_loading,
    "cache_verify": cache_verify,
    "sweep_parallel": sweep_parallel,
    "disentanglement_protocol": disentanglement_protocol,
    "dci_rounds": dci_rounds,
    "reproductions": reproductions,
    "test_suite": test_suite,
    "default_experiment": default_experiment,
    "disentangling_time": disentangling_time,
    "trials": trials,
    "speed_ab": speed_ab,
}


# ------------------------------------------------------------------ pages
def pages() -> list[Path]:
    """Every page that may hold a generated table: the README and the docs."""
    return [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def render(name: str) -> str:
    if name not in TABLES:
        raise KeyError(f"no table named {name!r}; bench/report.py knows: {', '.join(TABLES)}")
    try:
        return TABLES[name]()
    except Missing as missing:
        return str(missing)


def blocks(text: str) -> Iterator[re.Match[str]]:
    return BLOCK.finditer(text)


def rewrite(text: str) -> str:
    """The page with every generated block as this script writes it now."""
    return BLOCK.sub(
        lambda m: f"<!-- report: {m['name']} -->\n\n{render(m['name'])}\n\n<!-- end report -->",
        text,
    )


def stale(page: Path) -> list[str]:
    """The names of the page's generated tables that differ from what `rewrite` writes."""
    text = page.read_text()
    fresh = {m["name"]: m["body"] for m in blocks(rewrite(text))}
    return [m["name"] for m in blocks(text) if m["body"] != fresh[m["name"]]]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 if a table is stale"
    )
    args = parser.parse_args()
    failures = []
    for page in pages():
        text = page.read_text()
        if args.check:
            failures += [f"{page.relative_to(REPO)}: {name}" for name in stale(page)]
        else:
            new = rewrite(text)
            if new != text:
                page.write_text(new)
                print(f"rewrote {page.relative_to(REPO)}")
    if failures:
        print(
            "stale tables (run `python bench/report.py` to rewrite them):\n  "
            + "\n  ".join(failures),
            file=sys.stderr,
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
