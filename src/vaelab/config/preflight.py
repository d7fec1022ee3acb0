"""The command line before Hydra runs: compose, check, and stop bad input in one line.

Hydra reports a bad override as a multi-line message (or a traceback, for errors raised
in the task). `preflight` composes the config for the command line before Hydra runs,
so a bad override, an unknown option or a value out of range stops with one line
(`vaelab.errors.fail`) before a run folder, a W&B run or a process exists.
`vaelab.launch.job.reports_errors` does the same for errors raised while a job runs.
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from vaelab.config.resolvers import register_resolvers
from vaelab.errors import VaelabError, fail, find_user_error

register_resolvers()

#: conf/ of this checkout: the apps' configs.
CONF_DIR = Path(__file__).resolve().parents[3] / "conf"


def _sweep_variants(overrides: Sequence[Any]) -> list[list[str]]:
    """Override lists to compose: the fixed overrides with each sweep value on its own,
    or the fixed overrides alone when there is no sweep value to list.

    The fixed list is not checked on its own beside the sweep values: every variant
    holds it, and without them a swept required key (`-m ckpt_path=a.ckpt,b.ckpt`)
    would look missing.
    """
    fixed = [o.input_line for o in overrides if not o.is_sweep_override()]
    variants: list[list[str]] = []
    for override in overrides:
        if not override.is_sweep_override():
            continue
        try:
            values = list(override.sweep_string_iterator())
        except Exception:
            # Interval sweeps (Optuna) and globs have no finite list to check here;
            # their jobs are checked one by one when they run.
            continue
        key = override.get_key_element()
        variants += [[*fixed, f"{key}={value}"] for value in values]
    return variants or [fixed]


def _dotted_keys(cfg: Any, prefix: str = "") -> list[str]:
    """Every key path of a config ('data.batch_size'), for did-you-mean hints."""
    from omegaconf import DictConfig

    keys = []
    for key in cfg:
        path = f"{prefix}{key}"
        keys.append(path)
        child = cfg._get_node(key)
        if isinstance(child, DictConfig):
            keys += _dotted_keys(child, f"{path}.")
    return keys


def _explain_missing_option(exc: Any) -> str:
    missing = getattr(exc, "missing_cfg_file", "") or ""
    options = list(getattr(exc, "options", None) or [])
    if "/" in missing and options:
        group, _, option = missing.rpartition("/")
        close = difflib.get_close_matches(option, options, n=1)
        hint = f" (did you mean {group}={close[0]}?)" if close else ""
        choices = ", ".join(sorted(options))
        return f"unknown option '{option}' for {group}={hint}; choose one of: {choices}"
    return str(exc).splitlines()[0]


def _explain_composition_error(
    exc: Exception,
    known_keys: Sequence[str],
    config_name: str = "train",
    train_keys: Sequence[str] = (),
) -> str:
    first = str(exc).strip().splitlines()[0]
    if first.startswith("Could not override '"):
        key = first.split("'")[1]
        top = key.split(".")[0]
        if top in train_keys and top not in known_keys:
            # model=..., beta=..., latent_dim=...: the model comes from the checkpoint.
            return (
                f"'{key}' is a training setting; src/{config_name}.py rebuilds the model from "
                "the checkpoint (override data, trainer or paths keys instead)"
            )
        close = difflib.get_close_matches(key, known_keys, n=1)
        see = f"see `python src/{config_name}.py --cfg job`"
        hint = f"did you mean {close[0]}=...?" if close else see
        return f"unknown key '{key}' ({hint}); to add a new key write +{key}=..."
    cause = exc.__cause__
    if cause is not None and str(cause).strip():
        return f"{first} {str(cause).strip().splitlines()[0]}"
    return first


def preflight(config_name: str, argv: Sequence[str] | None = None) -> None:
    """Compose `config_name` with the command line's overrides; exit with one line on error.

    `config_name` is the app's config (train, eval, generate); the value checks are
    that app's (`vaelab.config.checks.check_config`).

    Does nothing for Hydra's informational flags (--help, --info, ...), which must keep
    working whatever the overrides are.
    """
    from hydra import compose, initialize_config_dir
    from hydra._internal.utils import get_args_parser
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import (
        ConfigCompositionException,
        MissingConfigException,
        OverrideParseException,
    )
    from omegaconf import open_dict

    from vaelab.config import handover
    from vaelab.config.checks import check_config
    from vaelab.config.schema import check_targets
    from vaelab.errors import ConfigError

    args = get_args_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.help or args.hydra_help or args.info or args.shell_completion:
        return
    try:
        overrides = OverridesParser.create().parse_overrides(args.overrides)
    except OverrideParseException as exc:
        fail(f"cannot parse the overrides: {str(exc).splitlines()[0]}")
    if any(o.key_or_group.split(".")[0].lstrip("+~") == "beta_schedule" for o in overrides):
        from vaelab.objectives import BETA_SCHEDULE_REPLACED

        fail(BETA_SCHEDULE_REPLACED)
    if not args.multirun and any(o.is_sweep_override() for o in overrides):
        # input_line: set on every parsed override
        sweeps = ", ".join(cast(str, o.input_line) for o in overrides if o.is_sweep_override())
        fail(f"{sweeps} lists several values; add -m to run one job per value")
    config_dir = str(Path(args.config_dir).resolve()) if args.config_dir else str(CONF_DIR)
    for override in overrides:
        group = override.key_or_group.lstrip("+")
        if (
            not override.is_delete()
            and override.value() is None
            and (Path(config_dir, group).is_dir())
        ):
            fail(
                f"{group}=null: a config group takes one of its options; "
                f"write ~{group} to leave it out"
            )
    GlobalHydra.instance().clear()
    handover.forget()
    with initialize_config_dir(config_dir=config_dir, version_base="1.3"):
        parser = OverridesParser.create()
        for variant in _sweep_variants(overrides):
            try:
                cfg = compose(config_name, overrides=variant, return_hydra_config=True)
                here = _runs_here(cfg)
                for plugin in ("launcher", "sweeper"):  # checked with the keys they read
                    check_targets(cfg.hydra[plugin], defaults=None, prefix=f"hydra.{plugin}")
                with open_dict(cfg):
                    del cfg["hydra"]  # as in a job: ${hydra:...} is read from HydraConfig
                parsed = parser.parse_overrides(variant)
                try:
                    built = check_config(cfg, config_name, here=here, overrides=parsed)
                except ConfigError:
                    # The message's example comes from the app's default config, composed
                    # only now that a message needs it: the command line's own config is
                    # composed once on the way that works.
                    check_config(
                        cfg, config_name, compose(config_name), here=here, overrides=parsed
                    )
                    raise
            except MissingConfigException as exc:
                fail(_explain_missing_option(exc))
            except ConfigCompositionException as exc:
                known = _dotted_keys(compose(config_name))
                train_keys = _dotted_keys(compose("train")) if config_name != "train" else []
                fail(_explain_composition_error(exc, known, config_name, train_keys))
            except Exception as exc:  # a bad value, a checkpoint that is not there
                # Hydra's instantiate wraps what a constructor raised: find the user's error.
                user_error = find_user_error(exc)
                if user_error is None:
                    raise
                fail(str(user_error))
            if not args.multirun:  # one job, in this process: it starts from what was built
                handover.hand_over(cfg, config_name, built)
        run_dirs = [
            o.value() for o in overrides if o.key_or_group in ("hydra.run.dir", "hydra.sweep.dir")
        ]
        _check_writable([str(d) for d in run_dirs] or [str(cfg.paths.log_dir)])
    GlobalHydra.instance().clear()
    if config_name == "train" and not args.multirun:
        _lock_named_run_folder(overrides)


def _lock_named_run_folder(overrides: Sequence[Any]) -> None:
    """A run folder named on the command line is locked before Hydra writes its .hydra/
    into it: a second run on the same folder stops here, before it changes anything.
    (Folders Hydra names itself are new; `train` locks those when the job starts.)"""
    from vaelab.runs.lock import is_first_process, lock_run_folder

    named = [str(o.value()) for o in overrides if o.key_or_group == "hydra.run.dir"]
    if named and "${" not in named[-1] and is_first_process():
        try:
            lock_run_folder(named[-1])
        except VaelabError as exc:
            fail(str(exc))


def _runs_here(cfg: Any) -> bool:
    """Whether the jobs run on this machine: not when a cluster launcher (SLURM) sends
    them to other nodes, whose cores and GPUs are not this machine's."""
    launcher = str(cfg.hydra.get("launcher", {}).get("_target_", ""))
    return "Slurm" not in launcher


def _check_writable(folders: Sequence[str]) -> None:
    """Run folders must be creatable before any work starts (nothing is lost later)."""
    import os

    for folder in folders:
        path = Path(folder).absolute()
        existing = next(p for p in (path, *path.parents) if p.exists())
        problem = "is a file" if not existing.is_dir() else "is not writable"
        if problem == "is a file" or not os.access(existing, os.W_OK):
            fail(
                f"cannot create run folders under {folder}: {existing} {problem}; "
                "set paths.log_dir=..."
            )
