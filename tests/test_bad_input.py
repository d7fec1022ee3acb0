"""Bad input never gets past the door: the real command lines, given a wrong value for a
key of every config group and entry point, stop with one line on stderr and exit code 2,
within seconds, before anything is created (no run folder, no W&B run, no process).

Each case runs the app as a user would, from an empty working folder, so that anything
it created (outputs/, wandb/, data/) would show up there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from data_fixtures import damage_tensor_bytes
from helpers import REPO, run_app
from in_process import call_train

#: (app, arguments, a part of the one line it must print). `{run}` is a trained run
#: folder, `{foreign}` a checkpoint that pickles a class from a package not installed,
#: `{corrupt}` a run folder whose .hydra/config.yaml does not parse.
CKPT = "ckpt_path={run}/checkpoints/best.ckpt"
MANY_CPUS = max(64, 4 * (os.cpu_count() or 1))
CASES = [
    # ---- train: the table
    ("train", ["trainer.max_epochs=abc"], "trainer.max_epochs='abc' must be an integer >= -1"),
    ("train", ["data.batch_size=0"], "data.batch_size=0 must be an integer >= 1"),
    ("train", ["data.batch_size=-3"], "data.batch_size=-3 must be an integer >= 1"),
    ("train", ["data.batch_size=abc"], "data.batch_size='abc' must be an integer >= 1"),
    ("train", ["model.optimizer._target_=torch.optim.Nope"], "torch.optim has no 'Nope'"),
    ("train", ["seed=-1"], "seed=-1 must be an integer >= 0 and <= 4294967295 (e.g. seed=0)"),
    ("train", ["data=folder"], "data.path is required"),
    (
        "train",
        ["data=fashion_mnist", "data.val_size=70000"],
        "data.val_size=70000 leaves no training data out of 60000 examples",
    ),
    ("train", ["model.optimizer.lr=fast"], "model.optimizer.lr='fast' must be a number"),
    ("train", ["trainer.precision=bf17"], "trainer.precision='bf17' must be one of 64, 32"),
    ("train", ["trainer.max_epochs=-5"], "trainer.max_epochs=-5 must be an integer >= -1"),
    ("train", ["data.resolution=7"], "data.resolution=7 must be an integer >= 8"),
    ("train", ["data.n_train=abc"], "data.n_train='abc' must be an integer >= 1 or null"),
    (
        "train",
        ["model=conv", "model.encoder.channels=[1,x]"],
        "model.encoder.channels=[1, 'x'] must be a list of integers >= 1",
    ),
    ("train", [f"trainer.devices={MANY_CPUS}"], f"would start {MANY_CPUS} CPU processes"),
    ("train", ["beta=nan"], "beta=nan is not finite; it must be a number"),
    ("train", ["beta=inf"], "beta=inf is not finite; it must be a number"),
    ("train", ["trainer.log_every_n_steps=-1"], "trainer.log_every_n_steps=-1 must be an integer"),
    ("train", ["data.n_train=10"], "has 10 examples, fewer than one batch of data.batch_size=128"),
    (
        "train",
        ["data.examples_per_epoch=100"],
        "an epoch (data.examples_per_epoch) has 100 examples, fewer than one batch of data",
    ),
    ("train", ["data.examples_per_epoch=0"], "data.examples_per_epoch=0 must be"),
    ("train", ["objective.beta_start=-1"], "objective.beta_start=-1 must be"),
    (
        "train",
        ["model/scheduler=null"],
        "model/scheduler=null: a config group takes one of its options; write ~model/scheduler",
    ),
    ("train", ["ckpt_path={foreign}"], "was saved with code that is not installed here"),
    ("train", ["ckpt_path={damaged}"], "is damaged: its tensors do not match the checksum"),
    # ---- train: what the Trainer's and the callbacks' own constructors refuse
    (
        "train",
        ["trainer.accelerator=tpuu"],
        "trainer: You selected an invalid accelerator name: `accelerator='tpuu'`",
    ),
    (
        "train",
        ["trainer.strategy=ddp_wrong"],
        "trainer: You selected an invalid strategy name: `strategy='ddp_wrong'`",
    ),
    ("train", ["trainer.profiler=nope"], "trainer: When passing string value for the `profiler`"),
    (
        "train",
        ["callbacks.model_checkpoint.save_top_k=-7"],
        "callbacks.model_checkpoint: Invalid value for save_top_k=-7. Must be >= -1",
    ),
    # ---- train: every group
    ("train", ["model=cnv"], "unknown option 'cnv' for model= (did you mean model=conv?)"),
    ("train", ["model/encoder=transformer"], "unknown option 'transformer' for model/encoder="),
    ("train", ["data=imagenet"], "unknown option 'imagenet' for data="),
    ("train", ["trainer=tpu"], "unknown option 'tpu' for trainer="),
    ("train", ["beta=-1"], "beta=-1 must be a number >= 0 (e.g. beta=1.0)"),
    ("train", ["beta=abc"], "beta='abc' must be a number"),
    ("train", ["latent_dim=0"], "latent_dim=0 must be an integer >= 1 (e.g. latent_dim=10)"),
    ("train", ["latent_dim=2.5"], "latent_dim=2.5 must be an integer"),
    ("train", ["latnt_dim=8"], "unknown key 'latnt_dim' (did you mean latent_dim=...?)"),
    ("train", ["data.batch_sze=8"], "did you mean data.batch_size=...?"),
    ("train", ["beta=1,4"], "beta=1,4 lists several values; add -m"),
    ("train", ["-m", "beta=1,-4"], "beta=-4 must be a number >= 0"),
    ("train", ["ckpt_path=x.ckpt", "resume=auto"], "either ckpt_path=... or resume=auto"),
    ("train", ["resume=yes"], "resume='yes' must be one of auto, intact or null"),
    ("train", ["flush_denormal=maybe"], "flush_denormal='maybe' must be true or false"),
    ("train", ["model.optimizer._target_=torch.optim.Adamm"], "did you mean"),
    ("train", ["model.optimizer.lr=-1"], "model.optimizer: Invalid learning rate: -1"),
    ("train", ["+model.foo=1"], "model.foo is not an argument of vaelab.models.VAE"),
    ("train", ["model.encoder.activation=Relu"], "activation 'Relu' is not a torch.nn module"),
    ("train", ["model=resnet", "model.decoder.fc_dim=-1"], "model.decoder.fc_dim=-1 must be"),
    ("train", ["likelihood=discretized_logistic"], "models 256-level images but the data has 2"),
    (
        "train",
        ["data=digits", "likelihood.sigma=0"],
        "likelihood.sigma=0 must be a number > 0 (e.g. likelihood.sigma=0.1)",
    ),
    (
        "train",
        ["objective.warmup_steps=-1"],
        "objective.warmup_steps=-1 must be an integer >= 0",
    ),
    ("train", ["objective=capacity", "objective.c_max=-2"], "c_max=-2 must be a number"),
    ("train", ["objective=beta_tcvae", "objective.estimator=mwss"], "must be one of mws, mss"),
    ("train", ["objective=factor_vae", "objective.hidden=[]"], "objective.hidden"),
    ("train", ["objective=iwae", "objective.k=0"], "objective.k=0 must be an integer >= 1"),
    ("train", ["beta_schedule=warmup"], "beta_schedule= is now objective=: "),
    ("train", ["callbacks.nonfinite_guard.action=ignore"], "must be one of stop, skip"),
    ("train", ["callbacks.image_grids.n_images=0"], "callbacks.image_grids.n_images=0 must be"),
    ("train", ["logger.wandb.mode=online2"], "logger.wandb.mode='online2' must be one of"),
    (
        "train",
        ["trainer.gradient_clip_val=-1"],
        "trainer.gradient_clip_val=-1 must be a number > 0",
    ),
    ("train", ["trainer.gradient_clip_algorithm=max"], "must be one of norm, value or null"),
    (
        "train",
        ["trainer.accumulate_grad_batches=0"],
        "trainer.accumulate_grad_batches=0 must be an integer >= 1",
    ),
    ("train", ["trainer.limit_train_batches=0"], "trainer.limit_train_batches=0 trains no step"),
    ("train", ["trainer.limit_val_batches=1.5"], "trainer.limit_val_batches=1.5 must be"),
    ("train", ["data.eval_batch_size=0"], "data.eval_batch_size=0 must be an integer >= 1"),
    ("train", ["-m", "beta=1", "hydra.sweep.dir=/etc/hostname/sweep"], "/etc/hostname is a file"),
    (
        "train",
        ["-m", "hydra/launcher=local", "hydra.launcher.timeout_min=-5", "beta=1"],
        "hydra.launcher.timeout_min=-5 must be an integer >= 1",
    ),
    (
        "train",
        ["hparams_search=optuna", "hydra.sweeper.n_trials=0"],
        "hydra.sweeper.n_trials=0 must be an integer >= 1",
    ),
    # ---- train: a metric name the run never logs; data that is not there (no network)
    (
        "train",
        ["callbacks.model_checkpoint.monitor=val/nonexistent"],
        "callbacks.model_checkpoint.monitor=val/nonexistent is not a metric this run logs",
    ),
    (
        "train",
        ["optimized_metric=val/nope"],
        "optimized_metric=val/nope is not a metric this run logs (did you mean "
        "optimized_metric=val/nelbo?)",
    ),
    ("train", ["data=mnist", "paths.data_dir=nodata"], "train-images-idx3-ubyte.gz not found in"),
    ("train", ["data=dsprites", "paths.data_dir=nodata"], "_64x64.npz not found in"),
    ("train", ["data=folder", "data.path=/nonexistent"], "image folder /nonexistent does not"),
    (
        "train",
        ["model/scheduler=onecycle", "model.scheduler.max_lr=[0.1,0.2]"],
        "model.scheduler: max_lr must have the same length as optimizer.param_groups",
    ),
    # ---- eval
    ("eval", [], "ckpt_path is required: python src/eval.py ckpt_path="),
    ("eval", ["ckpt_path=nowhere.ckpt"], "no checkpoint at nowhere.ckpt"),
    (
        "eval",
        [CKPT, "eval.iwae_k=0"],
        "eval.iwae_k=0 must be an integer >= 1 (e.g. eval.iwae_k=32)",
    ),
    ("eval", [CKPT, "eval.disentanglement.mig.n_bins=1"], "mig.n_bins=1 must be an integer >= 2"),
    (
        "eval",
        [CKPT, "eval.disentanglement.protocol=slow"],
        "eval.disentanglement.protocol='slow' must be one of dlib, fast",
    ),
    (
        "eval",
        [CKPT, "eval.disentanglement.metrics=[mig,migg]"],
        "eval.disentanglement.metrics",
    ),
    (
        "eval",
        [CKPT, "eval.disentanglement.irs.quantile=2"],
        "eval.disentanglement.irs.quantile=2 must be a number > 0 and <= 1",
    ),
    ("eval", [CKPT, "data.eval_batch_size=abc"], "data.eval_batch_size='abc' must be an integer"),
    ("eval", [CKPT, "trainer.precision=bf17"], "trainer.precision='bf17' must be one of"),
    ("eval", [CKPT, f"trainer.devices={MANY_CPUS}"], f"would start {MANY_CPUS} CPU processes"),
    ("eval", [CKPT, "model=mlp"], "'model' is a training setting"),
    ("eval", [CKPT, "data=mnist"], "was trained on 1x64x64 data but the chosen data is 1x28x28"),
    ("eval", ["ckpt_path={foreign}"], "was saved with code that is not installed here"),
    ("eval", ["ckpt_path={damaged}"], "is damaged: its tensors do not match the checksum"),
    (
        "eval",
        ["ckpt_path={corrupt}/checkpoints/best.ckpt"],
        "config.yaml is not a readable run config (ParserError",
    ),
    # ---- generate
    ("generate", [], "ckpt_path is required: python src/generate.py ckpt_path="),
    ("generate", [CKPT, "temperature=0"], "temperature=0 must be a number > 0"),
    ("generate", [CKPT, "n_samples=abc"], "n_samples='abc' must be an integer >= 1"),
    ("generate", [CKPT, "device=gpu"], "device='gpu' must be one of auto, cpu, cuda, mps"),
    ("generate", [CKPT, "interpolation.steps=1"], "interpolation.steps=1 must be an integer >= 2"),
    ("generate", [CKPT, "traversal.range=nan"], "traversal.range=nan is not finite"),
    ("generate", ["ckpt_path={foreign}"], "was saved with code that is not installed here"),
    ("generate", ["ckpt_path={damaged}"], "is damaged"),
    (
        "generate",
        ["ckpt_path={corrupt}/checkpoints/best.ckpt"],
        "config.yaml is not a readable run config",
    ),
]


@pytest.fixture(scope="session")
def files(tmp_path_factory) -> dict[str, Path]:
    """A trained run, a checkpoint that needs an uninstalled package, a corrupt run:
    inputs the cases only read (session-scoped, so that the cases may spread over test
    workers, each making them once)."""
    root = tmp_path_factory.mktemp("inputs")
    run = root / "run"
    result = call_train(
        "debug=smoke",
        "data.n_train=64",
        "data.n_val=32",
        "data.n_test=32",
        "logger=csv",
        f"hydra.run.dir={run}",
    )
    assert result.returncode == 0, result.stderr
    package = root / "site"
    package.mkdir()
    (package / "vaelab_plugin_gone.py").write_text("class Extra:\n    pass\n")
    foreign = root / "foreign.ckpt"
    script = (
        "import sys, torch; sys.path.insert(0, sys.argv[3]); import vaelab_plugin_gone as p\n"
        "ckpt = torch.load(sys.argv[1], weights_only=False); ckpt['extra'] = p.Extra()\n"
        "torch.save(ckpt, sys.argv[2])\n"
    )
    subprocess.run(
        [sys.executable, "-c", script, str(run / "checkpoints/best.ckpt"), foreign, package],
        check=True,
    )
    damaged = root / "damaged" / "checkpoints" / "best.ckpt"
    shutil.copytree(run, damaged.parent.parent)
    damage_tensor_bytes(damaged)
    corrupt = root / "corrupt"
    shutil.copytree(run, corrupt)
    (corrupt / ".hydra" / "config.yaml").write_text("data: [unclosed\n  key: : x\n")
    return {"run": run, "foreign": foreign, "corrupt": corrupt, "damaged": damaged}


def _assert_one_line_error(result: subprocess.CompletedProcess, message: str) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("vaelab: error: "), lines[0]
    assert message in lines[0], lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    return lines[0]


@pytest.mark.parametrize(
    ("app", "arguments", "message"),
    CASES,
    ids=[f"{app} {' '.join(arguments)}" for app, arguments, _ in CASES],
)
def test_bad_value_stops_with_one_line_and_creates_nothing(
    app: str, arguments: list[str], message: str, files: dict[str, Path], tmp_path: Path
) -> None:
    arguments = [a.format(**files) for a in arguments]
    started = time.monotonic()
    result = run_app(
        app,
        *arguments,
        f"hydra.run.dir={tmp_path}/run",
        f"hydra.sweep.dir={tmp_path}/sweep",
        cwd=tmp_path,
        timeout=60,
        env={"WANDB_MODE": "offline"},  # a run that got through would write a W&B run
    )
    elapsed = time.monotonic() - started
    _assert_one_line_error(result, message)
    assert list(tmp_path.iterdir()) == [], "created: " + ", ".join(
        p.name for p in tmp_path.iterdir()
    )
    assert elapsed < 30, f"took {elapsed:.1f} s"


def test_there_are_at_least_forty_cases_over_every_entry_point() -> None:
    apps = {app for app, _, _ in CASES}
    assert len(CASES) >= 40 and apps == {"train", "eval", "generate"}


def _compare(*arguments: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vaelab.compare", *arguments],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )


def test_compare_skips_a_malformed_metrics_json_with_its_reason(
    files: dict[str, Path], tmp_path: Path
) -> None:
    sweep = tmp_path / "sweep"
    good, bad, broken = sweep / "0_good", sweep / "1_bad", sweep / "2_broken"
    shutil.copytree(files["run"], good, ignore=shutil.ignore_patterns("checkpoints", "wandb"))
    shutil.copytree(good, bad)
    shutil.copytree(good, broken)
    summary = json.loads((bad / "metrics.json").read_text())
    (bad / "metrics.json").write_text(json.dumps({**summary, "overrides": 5}))
    (broken / "metrics.json").write_text(json.dumps({**summary, "metrics": {"val/nelbo": "x"}}))

    result = _compare(str(sweep), "--no-plots", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    skipped = [line for line in result.stderr.splitlines() if line.startswith("skipped")]
    assert skipped == [
        f"skipped {bad}: unreadable metrics.json ('overrides' is 5: input should be a valid list)",
        f"skipped {broken}: unreadable metrics.json ('metrics.val/nelbo' is \"x\": "
        "input should be a valid number)",
    ]
    table = result.stdout
    assert "0_good" in table and "1_bad" not in table and "2_broken" not in table


def test_compare_with_a_metric_no_run_has_is_one_line(files: dict[str, Path], tmp_path) -> None:
    result = _compare(str(files["run"]), "--sort", "test/nosuch", "--no-plots", cwd=tmp_path)
    _assert_one_line_error(result, "test/nosuch")


@pytest.mark.parametrize(
    ("override", "key", "upstream"),
    [
        ("trainer.accelerator=tpuu", "trainer", "invalid accelerator name"),
        ("callbacks.model_checkpoint.save_top_k=-7", "callbacks.model_checkpoint", "save_top_k"),
        ("trainer.profiler=nope", "trainer", "`profiler`"),
    ],
)
def test_what_a_constructor_refuses_is_one_config_error_naming_its_key(
    hydra_conf, override: str, key: str, upstream: str
) -> None:
    """The Trainer and callbacks are built before the run (and thrown away): the
    constructor's own message, prefixed by the key, with what to type to see it."""
    from helpers import compose_anywhere

    from vaelab.config.checks import check_trainer_and_callbacks
    from vaelab.errors import ConfigError

    check_trainer_and_callbacks(compose_anywhere("debug=smoke"))  # the defaults build
    with pytest.raises(ConfigError) as refused:
        check_trainer_and_callbacks(compose_anywhere("debug=smoke", override))
    message = str(refused.value)
    assert message.startswith(f"{key}: ") and upstream in message
    assert f"python src/train.py --cfg job --package {key}" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("part", "key"),
    [("data", "data"), ("model", "model")],
)
def test_what_the_data_module_or_model_constructor_raises_is_one_line_naming_it(
    hydra_conf, monkeypatch: pytest.MonkeyPatch, part: str, key: str
) -> None:
    """Any exception from the data module's or the model's constructor (not only the
    rules vaelab enumerates) becomes a ConfigError naming the key, with its message."""
    from helpers import compose_anywhere

    from vaelab.config import build
    from vaelab.config.checks import build_cheap_parts
    from vaelab.errors import ConfigError

    def refuses(*args: object, **kwargs: object) -> object:
        raise RuntimeError(f"the {part} constructor refused this")

    if part == "data":
        monkeypatch.setattr("hydra.utils.instantiate", refuses)
    else:
        monkeypatch.setattr(build, "build_model", refuses)
    with pytest.raises(ConfigError) as refused:
        build_cheap_parts(compose_anywhere("debug=smoke"))
    message = str(refused.value)
    assert message.startswith(f"{key}: the {part} constructor refused this (its settings:")


def test_a_value_that_reads_the_jobs_own_folder_is_left_for_the_job_to_build(hydra_conf) -> None:
    """`${hydra:runtime.output_dir}` exists only once Hydra starts the job: the check
    before the run does not refuse it (the job builds that part then)."""
    from helpers import compose_anywhere

    from vaelab.config.checks import check_trainer_and_callbacks

    job_folder = "${hydra:runtime.output_dir}"
    check_trainer_and_callbacks(
        compose_anywhere(
            "debug=smoke",
            f"trainer.default_root_dir={job_folder}",
            f"callbacks.image_grids.dirpath={job_folder}/images",
        )
    )
