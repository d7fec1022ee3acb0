"""Helpers the tests share: compose the real configs, run the real entry points."""

from __future__ import annotations

import copy
import functools
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
TRAIN_SCRIPT = REPO / "src" / "train.py"


def config_options(group: str) -> list[str]:
    """The options of a config group, from the files in conf/<group>/; a file whose
    name starts with '_' is a shared part the options include, not an option."""
    return sorted(p.stem for p in (CONF / group).glob("*.yaml") if not p.stem.startswith("_"))


def objective_choice(objective: str) -> list[str]:
    """The overrides that choose `objective`, with the latent structure it needs read
    from its class (`objective=vq` trains `latent=vq` only)."""
    from hydra.utils import get_class
    from omegaconf import OmegaConf

    target = OmegaConf.load(CONF / "objective" / f"{objective}.yaml")._target_
    return [f"objective={objective}", *(["latent=vq"] if get_class(target).needs_quantised else [])]


def config_groups() -> list[str]:
    """Every config group under conf/ (nested ones as `model/encoder`), Hydra's own
    (`hydra/...`) left out."""
    return sorted(
        d.relative_to(CONF).as_posix()
        for d in CONF.rglob("*")
        if d.is_dir()
        and d.relative_to(CONF).parts[0] != "hydra"
        and config_options(d.relative_to(CONF).as_posix())
    )


def default_parts() -> dict:
    """The VAE's likelihood, objective, optimizer and compile flag as conf/ sets them by
    default (conf/train.yaml composed), as plain dicts: conf/ is their one source."""
    return copy.deepcopy(_default_parts())


def compose_anywhere(*overrides: str):
    """conf/train.yaml composed, inside the `hydra_conf` fixture's Hydra or without it."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():
        return compose("train", overrides=list(overrides))
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=list(overrides))


@functools.cache
def _default_parts() -> dict:
    from omegaconf import OmegaConf

    cfg = compose_anywhere()
    return {
        "likelihood": OmegaConf.to_container(cfg.likelihood, resolve=True),
        "objective": OmegaConf.to_container(cfg.objective, resolve=True),
        "optimizer": OmegaConf.to_container(cfg.model.optimizer, resolve=True),
        "compile": bool(cfg.model.compile),
    }


def make_vae(data_shape, cls=None, **parts):
    """A VAE for `data_shape` with conf/'s default parts where `parts` gives none."""
    from vaelab.models import VAE

    return (cls or VAE)(data_shape, **{**default_parts(), **parts})


def compose_train(*overrides: str, run_dir: Path | None = None):
    """Compose conf/train.yaml like the app does, with Hydra's runtime set (paths work)."""
    from hydra import compose
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict, read_write

    extra = [f"hydra.run.dir={run_dir}"] if run_dir else []
    cfg = compose("train", overrides=[*overrides, *extra], return_hydra_config=True)
    if run_dir is not None:
        with read_write(cfg), open_dict(cfg):  # what Hydra sets when it runs a job
            cfg.hydra.runtime.output_dir = str(run_dir)
    HydraConfig().set_config(cfg)
    with read_write(cfg), open_dict(cfg):
        del cfg["hydra"]  # as in a real job: `${hydra:...}` reads HydraConfig, not cfg
    return cfg


#: A training job of a few seconds: one short epoch of a small MLP on 32x32 shapes,
#: CSV logging only (sweep tests run several of them).
SMOKE_MLP = (
    "debug=smoke",
    "data.resolution=32",
    "model/encoder=mlp",
    "model/decoder=mlp",
    "logger=csv",
)


def quiet_trainer(**settings):
    """A Lightning Trainer for in-process tests: no logger, progress bar, model summary,
    checkpointing or sanity check, unless `settings` turns one on."""
    import lightning as L

    quiet = {
        "logger": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "enable_checkpointing": False,
        "num_sanity_val_steps": 0,
    }
    return L.Trainer(**{**quiet, **settings})


def run_train(*overrides: str, cwd: Path = REPO, timeout: float = 240, env: dict | None = None):
    """Run `python src/train.py <overrides>` as a user would; return the CompletedProcess."""
    return run_app("train", *overrides, cwd=cwd, timeout=timeout, env=env)


def run_app(
    app: str, *overrides: str, cwd: Path = REPO, timeout: float = 240, env: dict | None = None
):
    """Run `python src/<app>.py <overrides>` (train, eval, generate); the CompletedProcess."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, str(REPO / "src" / f"{app}.py"), *overrides],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )


def run_sweep(
    log_dir: Path, *overrides: str, timeout: float = 600, env: dict | None = None
) -> Path:
    """Run `python src/train.py -m <overrides>` with `paths.log_dir=log_dir`; assert it
    succeeded and return its one sweep folder."""
    result = run_train("-m", *overrides, f"paths.log_dir={log_dir}", timeout=timeout, env=env)
    return sweep_folder(log_dir, result)


def sweep_folder(log_dir: Path, result) -> Path:
    """The one sweep folder below `log_dir` of a `-m` run that must have succeeded."""
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep_dir,) = (Path(log_dir) / "multirun").glob("*/*")
    return sweep_dir


def kill_train_when(ready, *overrides: str, settle: float = 0.0, timeout: float = 180) -> None:
    """Start `python src/train.py <overrides>` and SIGKILL it once `ready()` is true (and
    `settle` seconds later); assert that the kill, not the end of the run, stopped it."""
    import signal
    import time

    proc = subprocess.Popen(
        [sys.executable, str(REPO / "src" / "train.py"), *overrides],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + timeout
    while not ready() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(settle)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run finished before it could be killed"


def read_wandb_run(run_dir: Path) -> dict:
    """What an offline W&B run recorded: name, group, tags, config and summary.

    Offline runs cannot be queried through the API, so this reads the run's `.wandb`
    file: W&B's record log (LevelDB log format: 32 KiB blocks, 7-byte record headers
    `<checksum u32><length u16><type u8>`, records split FIRST/MIDDLE/LAST across
    blocks) of `wandb_internal_pb2.Record` protobufs.
    """
    import json
    import struct

    from wandb.proto import wandb_internal_pb2 as pb

    (path,) = Path(run_dir).glob("run-*.wandb")
    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B record log"
    block, header = 32768, 7
    pos, pending, payloads = header, b"", []
    while pos + header <= len(data):
        if block - pos % block < header:  # block trailer too short for a header: padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + header])
        chunk = data[pos + header : pos + header + length]
        pos += header + length
        if kind == 1:
            payloads.append(chunk)
        elif kind == 2:
            pending = chunk
        elif kind == 3:
            pending += chunk
        elif kind == 4:
            payloads.append(pending + chunk)
        elif kind == 0 and length == 0:
            pos += block - pos % block  # zero padding to the end of the block
    run: dict = {"config": {}, "summary": {}, "history_keys": set()}
    for payload in payloads:
        record = pb.Record()
        record.ParseFromString(payload)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run.update(
                id=record.run.run_id,
                name=record.run.display_name,
                group=record.run.run_group,
                job_type=record.run.job_type,
                tags=list(record.run.tags),
                project=record.run.project,
            )
            for item in record.run.config.update:
                run["config"][item.key] = json.loads(item.value_json)
        elif kind == "config":
            for item in record.config.update:
                run["config"][item.key] = json.loads(item.value_json)
        elif kind == "summary":
            for item in record.summary.update:
                key = item.key or "/".join(item.nested_key)
                run["summary"][key] = json.loads(item.value_json)
        elif kind == "history":
            run["history_keys"].update(
                item.key or "/".join(item.nested_key) for item in record.history.item
            )
        elif kind == "exit":
            run["exit_code"] = record.exit.exit_code
    return run


def check_arguments(target: str, key: str = "node", **arguments):
    """Check `arguments` for `target` as a config would be (`vaelab.config.schema`): raises the
    `ConfigError` a user would see for `<key>.<argument>=...`."""
    from omegaconf import OmegaConf

    from vaelab.config.schema import check_targets

    check_targets(OmegaConf.create({"_target_": target, **arguments}), None, key)
