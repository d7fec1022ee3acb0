"""The README and the documentation site cannot go stale.

- The README's config-group table is every group and option Hydra finds in `conf/`
  (and no other).
- Every command in a ```bash block of README.md and docs/*.md is run: a training
  command at `debug=smoke`, an eval or generate command on a trained smoke run, compare
  on a folder of runs; a sweep's jobs, and commands that need hardware or a cluster
  this machine lacks (a GPU, SLURM, DDP processes), through the pre-flight checks that
  every run passes before anything is created. `make` targets and bench scripts must
  exist with the flags the page gives them.
- The site builds with `mkdocs build --strict` (test_site_builds_strict).
"""

from __future__ import annotations

import itertools
import json
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from data_fixtures import SMALL_DATA_OVERRIDES, small_data_root
from helpers import REPO, compose_train
from in_process import call_app, call_module, call_preflight

CONF = REPO / "conf"
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
APPS = {"src/train.py": "train", "src/eval.py": "eval", "src/generate.py": "generate"}
PLACEHOLDERS = ("<run>", "<vq-run>", "<conditional-run>", "<sweep>")

# ------------------------------------------------------------------ the config groups

TABLE = re.compile(
    r"<!-- config groups: tests/test_docs.py -->\n(?P<table>.*?)<!-- end of config groups -->",
    re.DOTALL,
)
#: Hydra's own groups a user does not pick from (logging, help, output): not in the table.
HYDRA_INTERNAL = re.compile(r"^hydra/(?!launcher$|sweeper$)")


def groups_in_conf() -> dict[str, set[str]]:
    """Every config group and its options as Hydra lists them for conf/ (the session's
    Hydra, `hydra_conf`): the option files there and the options Hydra's plugins bring
    (`hydra/launcher=basic`, `submitit_slurm`)."""
    from hydra.core.global_hydra import GlobalHydra

    loader = GlobalHydra.instance().config_loader()
    found: dict[str, set[str]] = {}

    def walk(parent: str) -> None:
        for group in loader.list_groups(parent):
            name = f"{parent}/{group}" if parent else group
            options = set(loader.get_group_options(name))
            if options and not HYDRA_INTERNAL.match(name) and name != "hydra":
                found[name] = options
            walk(name)

    walk("")
    return found


def groups_in_readme() -> dict[str, set[str]]:
    """The README's table: each row's groups (first cell) and options (the second
    cell's backticked names)."""
    match = TABLE.search((REPO / "README.md").read_text())
    assert match, "README.md has no config-group table between its markers"
    table: dict[str, set[str]] = {}
    for row in match["table"].strip().splitlines()[2:]:
        cells = [cell.strip() for cell in row.strip("|").split(" | ")]
        options = set(re.findall(r"`([\w/]+)`", cells[1]))
        for group in re.findall(r"`([\w/]+)`", cells[0]):
            assert group not in table, f"{group} is in two rows"
            table[group] = options
    return table


def table_differences(conf: dict[str, set[str]], readme: dict[str, set[str]]) -> list[str]:
    """What the README's table lacks or has in excess, one line each."""
    lines = [
        f"group {g} is in conf/ but not in the README" for g in sorted(set(conf) - set(readme))
    ]
    lines += [
        f"group {g} is in the README but not in conf/" for g in sorted(set(readme) - set(conf))
    ]
    for group in sorted(set(conf) & set(readme)):
        lines += [
            f"{group}={o} is in conf/ but not in the README"
            for o in sorted(conf[group] - readme[group])
        ]
        lines += [
            f"{group}={o} is in the README but not in conf/"
            for o in sorted(readme[group] - conf[group])
        ]
    return lines


def test_the_readme_lists_every_config_group_and_option(hydra_conf) -> None:
    conf = groups_in_conf()
    assert {"data", "model/encoder", "hydra/launcher", "experiment"} <= set(conf)
    assert "basic" in conf["hydra/launcher"], "Hydra's own options are listed too"
    assert table_differences(conf, groups_in_readme()) == []


def test_the_table_check_names_what_is_missing_or_extra(hydra_conf) -> None:
    conf = groups_in_conf()
    readme = {group: set(options) for group, options in groups_in_readme().items()}
    readme["data"].discard("cars3d")
    readme["objective"].add("vqgan")
    del readme["setting"]
    assert table_differences(conf, readme) == [
        "group setting is in conf/ but not in the README",
        "data=cars3d is in conf/ but not in the README",
        "objective=vqgan is in the README but not in conf/",
    ]


# ------------------------------------------------------------------ the commands


@dataclass(frozen=True)
class Documented:
    """One command line of a ```bash block."""

    page: str
    argv: tuple[str, ...]

    @property
    def text(self) -> str:
        return shlex.join(self.argv)

    @property
    def app(self) -> str | None:
        if len(self.argv) > 1 and self.argv[0] == "python":
            return APPS.get(self.argv[1])
        return None

    @property
    def module(self) -> str | None:
        if self.argv[:2] == ("python", "-m"):
            return self.argv[2]
        return None


def documented_commands() -> list[Documented]:
    """Each distinct command of the pages' ```bash blocks, in page order."""
    seen: dict[tuple[str, ...], Documented] = {}
    for page in PAGES:
        for block in re.findall(r"^```bash\n(.*?)^```", page.read_text(), re.M | re.S):
            for line in block.splitlines():
                argv = tuple(shlex.split(line, comments=True))
                if argv and argv not in seen:
                    seen[argv] = Documented(str(page.relative_to(REPO)), argv)
    return list(seen.values())


COMMANDS = documented_commands()
APP_COMMANDS = [c for c in COMMANDS if c.app or c.module]


def checked_here(command: Documented) -> bool:
    """An app, compare, a make target, a bench script: the kinds this file checks."""
    script = command.argv[1] if len(command.argv) > 1 else ""
    return bool(
        command.app
        or command.module == "vaelab.compare"
        or command.argv[0] in ("make", "bash")
        or (command.argv[0] == "python" and script.startswith("bench/"))
    )


def test_every_documented_command_is_one_this_file_checks() -> None:
    assert [c.text for c in COMMANDS if not checked_here(c)] == []
    assert len(APP_COMMANDS) >= 20, "the pages' commands were not found"


def test_documented_make_targets_and_scripts_exist() -> None:
    targets = set(re.findall(r"^([\w-]+):", (REPO / "Makefile").read_text(), re.M))
    for command in COMMANDS:
        if command.argv[0] == "make":
            assert command.argv[1] in targets, f"{command.page}: {command.text}"
        elif command.argv[0] == "bash" or command.argv[1].startswith("bench/"):
            script = REPO / command.argv[1]
            assert script.is_file(), f"{command.page}: {command.text}"
            source = script.read_text()
            for flag in (a.split("=")[0] for a in command.argv[2:] if a.startswith("--")):
                assert f'"{flag}"' in source, f"{command.page}: {flag} is not a flag of {script}"


#: Commands a smoke run cannot take here: a GPU, a SLURM cluster, processes of their own
#: (DDP ranks, launcher jobs), or several jobs. The pre-flight checks run them instead.
CHECK_ONLY = re.compile(
    r"^(-m|--multirun|hparams_search=.*|trainer=(gpu|ddp|ddp_cpu)|hydra/launcher=.*)$"
)
#: The one line a GPU command gets on a machine without one.
GPU_MISSING = (
    "vaelab: error: trainer.accelerator=gpu but no CUDA GPU is visible here; use "
    "trainer=cpu (or trainer=ddp_cpu for several CPU processes)"
)


def needs_a_gpu(args: list[str]) -> bool:
    """A GPU trainer run here, not on a SLURM node."""
    gpu = any(re.match(r"^trainer=(gpu|ddp)$", a) for a in args)
    return gpu and "hydra/launcher=slurm" not in args


#: What makes each app's command a short one, added to the page's overrides.
SMOKE = {
    "train": ["debug=smoke"],
    "eval": ["eval.iwae_k=2", "eval.disentanglement.enabled=false", "data.n_test=64"],
    "generate": ["n_samples=16"],
}


#: Samplers with a `steps` budget of fitting, which a documented command's check shortens.
FITTED_BRIEFLY = ("sampler=code_prior", "sampler=maf", "sampler=two_stage")

#: The data modules whose files `small_data_root` writes.
SMALL_FILES = {
    "DSpritesDataModule": "dsprites",
    "MNISTDataModule": "mnist",
    "CIFAR10DataModule": "cifar10",
    "CelebADataModule": "celeba",
}


def sweep_jobs(overrides: list[str]) -> list[list[str]]:
    """The jobs of a basic sweep: the cartesian product of the comma-separated values
    (commas inside brackets belong to a list value)."""
    axes = []
    for override in overrides:
        key, _, value = override.partition("=")
        values = re.split(r",(?![^\[]*\])", value) if "=" in override else [value]
        axes.append([f"{key}={v}" if "=" in override else override for v in values])
    return [list(job) for job in itertools.product(*axes)]


def run_documented_command(
    command: Documented, tmp_path: Path, trained_run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run one documented command as a user would, in this process, on small data."""
    folders: dict[str, Path] = {}

    def folder(placeholder: str) -> str:
        if placeholder not in folders:
            smoke = ("debug=smoke", "data.resolution=32", "logger=csv")
            if placeholder == "<run>":
                folders[placeholder] = trained_run(*smoke, to=tmp_path / "run")
            elif placeholder == "<vq-run>":  # a VQ-VAE's run (docs/vq.md)
                vq = ("latent=vq", "objective=vq", "latent.codes=32")
                folders[placeholder] = trained_run(*smoke, *vq, to=tmp_path / "vq-run")
            elif placeholder == "<conditional-run>":  # docs/conditional.md
                given = ("conditional=[shape]",)
                folders[placeholder] = trained_run(*smoke, *given, to=tmp_path / "cond-run")
            else:
                sweep = tmp_path / "sweep"
                trained_run(*smoke, to=sweep / "0_beta=1")
                trained_run(*smoke, "beta=4", to=sweep / "1_beta=4")
                folders[placeholder] = sweep
        return str(folders[placeholder])

    args = []
    for arg in command.argv[2:] if command.app else command.argv[3:]:
        for placeholder in PLACEHOLDERS:
            if placeholder in arg:
                arg = arg.replace(placeholder, folder(placeholder))
        args.append(arg)

    if command.module:
        result = call_module(command.module, *args)
        assert result.returncode == 0, result.stderr[-3000:]
        assert (Path(args[0]) / "comparison.csv").is_file() or "--out" in args
        return

    app = command.app
    assert app
    data: list[str] = []
    if app == "train":
        # Which data the command trains on: its first job, without Hydra's own settings.
        settings = [a for a in args if not CHECK_ONLY.match(a) and not a.startswith("hydra")]
        probe = compose_train(*sweep_jobs(settings)[0])
        data_module = probe.data._target_.rsplit(".", 1)[1]
        dataset = SMALL_FILES.get(data_module)
        if data_module == "ShapesDataModule":  # rendered: smaller images render faster
            data = ["data.resolution=32"]
        elif dataset:  # the dataset's files, small, in their real formats
            root = small_data_root(dataset, tmp_path / "data", monkeypatch)
            data = [f"paths.data_dir={root}", *SMALL_DATA_OVERRIDES[dataset]]
    if any(CHECK_ONLY.match(a) for a in args):
        # The checks every job passes before anything starts (a sweep's jobs each, as
        # `-m` makes them). On a machine without the GPUs a command asks for, they must
        # pass it but for that one line (on a SLURM launcher devices are checked on the
        # node, so those pass here).
        no_gpu = needs_a_gpu(args) and not torch.cuda.is_available()
        where = "hydra.sweep.dir" if "-m" in args else "hydra.run.dir"
        own = [] if any(a.startswith(where) for a in args) else [f"{where}={tmp_path / 'out'}"]
        result = call_preflight(app, *args, *SMOKE[app], *data, *own)
        if no_gpu:
            assert (result.returncode, result.stderr.strip()) == (2, GPU_MISSING)
        else:
            assert result.returncode == 0, result.stderr[-2000:]
        return

    run_dir = tmp_path / "new_run"
    own_dir = any(a.startswith("hydra.run.dir=") for a in args)
    where = [] if own_dir or app != "train" else [f"hydra.run.dir={run_dir}"]
    # A fitted sampler fits briefly: the command is checked, not the fit (its own tests
    # check that, tests/test_quantise.py and tests/test_samplers.py).
    short_fit = ["sampler.steps=200"] if any(a in FITTED_BRIEFLY for a in args) else []
    result = call_app(app, *args, *SMOKE[app], *short_fit, *data, *where)
    assert result.returncode == 0, result.stderr[-3000:]
    if app == "train":
        if own_dir:
            run_dir = Path(next(a for a in args if a.startswith("hydra.run.dir=")).split("=")[1])
        summary = json.loads((run_dir / "metrics.json").read_text())
        assert summary["status"] == "finished"
        assert summary["metrics"]["test/nelbo"] > 0
    elif app == "eval":
        target = Path(args[0].split("=", 1)[1])
        written = list(target.parent.glob("eval.json")) + list(target.rglob("eval.json"))
        assert written, "eval wrote no eval.json"
    else:
        target = Path(args[0].split("=", 1)[1])  # generated/ beside the checkpoint
        # samples.png, or samples_<sampler>.png from a fitted sampler
        sampler = next((a.split("=", 1)[1] for a in args if a.startswith("sampler=")), "prior")
        name = "samples.png" if sampler == "prior" else f"samples_{sampler}.png"
        assert (target.parent / "generated" / name).is_file()
        if "<conditional-run>" in command.text:  # a row of draws per class
            assert (target.parent / "generated" / "class_grid.png").is_file()


@pytest.mark.parametrize("command", APP_COMMANDS, ids=[c.text[:90] for c in APP_COMMANDS])
def test_a_documented_command_runs(
    command: Documented, tmp_path: Path, trained_run, monkeypatch: pytest.MonkeyPatch, hydra_conf
) -> None:
    run_documented_command(command, tmp_path, trained_run, monkeypatch)


def test_the_sweep_expansion_is_the_basic_sweepers() -> None:
    jobs = sweep_jobs(["beta=0.5,1", "latent_dim=8,16", "'logger=[csv,mlflow]'"[1:-1]])
    assert jobs == [
        ["beta=0.5", "latent_dim=8", "logger=[csv,mlflow]"],
        ["beta=0.5", "latent_dim=16", "logger=[csv,mlflow]"],
        ["beta=1", "latent_dim=8", "logger=[csv,mlflow]"],
        ["beta=1", "latent_dim=16", "logger=[csv,mlflow]"],
    ]


# ------------------------------------------------------------------ the site


@pytest.mark.skipif(
    shutil.which("mkdocs", path=str(Path(sys.executable).parent)) is None,
    reason="mkdocs is not installed (pip install -e '.[docs]')",
)
def test_site_builds_strict(tmp_path: Path) -> None:
    mkdocs = Path(sys.executable).parent / "mkdocs"
    result = subprocess.run(
        [str(mkdocs), "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    built = {p.relative_to(tmp_path / "site").parts[0] for p in (tmp_path / "site").iterdir()}
    for page in sorted((REPO / "docs").glob("*.md")):
        name = "index.html" if page.stem == "index" else page.stem
        assert name in built, f"{page.name} was not built"
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    assert "load_from_checkpoint" in api or "VAE" in api
