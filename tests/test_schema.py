"""The rules for config values come from the signatures that receive them (vaelab.config.schema):
known answers for the type check, the words and examples of the messages, and that the
shipped configs pass their own rules."""

from __future__ import annotations

import inspect
import re
from collections.abc import Sequence
from typing import Annotated, Literal

import pytest
import torch
from helpers import check_arguments, compose_train, config_groups, config_options
from omegaconf import DictConfig, OmegaConf
from pydantic import BaseModel, Field

from vaelab.config.constraints import PositiveInt
from vaelab.config.schema import check_settings, check_targets, describe, fits, signature_of
from vaelab.config.settings import APP_SETTINGS, TrainSettings
from vaelab.config.upstream_ranges import ranges_for
from vaelab.errors import ConfigError


@pytest.mark.parametrize(
    ("value", "annotation", "expected"),
    [
        (3, int, True),
        (1.5, int, False),  # not rounded
        (2.0, int, False),  # a float is not an int, even a whole one
        (True, int, False),  # nor is a bool
        ("3", int, False),  # nor a quoted number
        (3, float, True),  # an int is a number
        (float("nan"), float, False),
        (float("inf"), float, False),
        ([0.9, 0.99], tuple[float, float], True),  # YAML lists fill tuples
        ([0.9], tuple[float, float], False),
        (0, Annotated[int, Field(ge=1)], False),
        (1, Annotated[int, Field(ge=1)], True),
        (None, PositiveInt | None, True),
        ("bf16", Literal["bf16", "32"], True),
        ("bf17", Literal["bf16", "32"], False),
        (0.1, float | torch.Tensor, True),  # a Tensor cannot come from a config
        ("fast", float | torch.Tensor, False),
    ],
)
def test_fits_is_strict_about_types_and_bounds(value, annotation, expected: bool) -> None:
    assert fits(value, annotation) is expected


@pytest.mark.parametrize(
    ("annotation", "words"),
    [
        (Annotated[int, Field(ge=-1)] | None, "an integer >= -1 or null"),
        (Annotated[float, Field(gt=0, le=1)], "a number > 0 and <= 1"),
        (Literal["norm", "value"] | None, "one of norm, value or null"),
        (Literal[16, 32] | Literal["bf16-mixed"], "one of 16, 32, bf16-mixed"),
        (Sequence[PositiveInt], "a list of integers >= 1"),
        (bool, "true or false"),
        (float | torch.Tensor, "a number"),
    ],
)
def test_describe_says_the_rule_in_words(annotation, words: str) -> None:
    assert describe(annotation) == words


def test_a_value_from_an_interpolation_is_reported_under_the_key_the_user_set() -> None:
    cfg = OmegaConf.create(
        {"seed": -1, "data": {"_target_": "vaelab.data.shapes.ShapesDataModule", "seed": "${seed}"}}
    )
    with pytest.raises(ConfigError, match=r"^seed=-1 must be an integer >= 0 and <= 4294967295"):
        check_targets(cfg)


def test_the_example_is_the_default_configs_value_else_the_parameters_default() -> None:
    defaults = OmegaConf.create({"data": {"batch_size": 64}})
    cfg = OmegaConf.create(
        {"data": {"_target_": "vaelab.data.shapes.ShapesDataModule", "batch_size": 0}}
    )
    with pytest.raises(ConfigError, match=r"\(e\.g\. data\.batch_size=64\)$"):
        check_targets(cfg, defaults)
    with pytest.raises(ConfigError, match=r"\(e\.g\. data\.batch_size=128\)$"):
        check_targets(cfg)  # ShapesDataModule's own default


def test_a_target_that_does_not_import_gets_did_you_mean() -> None:
    with pytest.raises(ConfigError, match=r"did you mean model\.optimizer\._target_=torch\.optim"):
        check_arguments("torch.optim.Adamm", "model.optimizer")
    with pytest.raises(ConfigError, match="there is no module 'nosuchpackage' here"):
        check_arguments("nosuchpackage.Thing", "model.optimizer")


def test_an_argument_the_target_does_not_take_gets_did_you_mean() -> None:
    with pytest.raises(ConfigError, match=r"did you mean data\.batch_size\?"):
        check_arguments("vaelab.data.shapes.ShapesDataModule", "data", batch_sze=8)


def test_a_subclass_passing_kwargs_on_is_checked_against_its_parents_arguments() -> None:
    from vaelab.callbacks import ModelCheckpoint

    signature = signature_of(ModelCheckpoint)
    assert "save_top_k" in signature.parameters and not signature.open
    with pytest.raises(ConfigError, match="save_top_k='all' must be an integer"):
        check_arguments("vaelab.callbacks.ModelCheckpoint", "callbacks.ckpt", save_top_k="all")


def test_the_optimizer_is_checked_as_the_vae_will_call_it() -> None:
    """`fused` is dropped for an optimiser without it (VAE.optimizer_arguments), so the
    presets' `fused: true` beside RMSprop passes; a misspelt argument does not."""
    model = {"_target_": "vaelab.models.VAE", "latent_dim": 4}
    for optimizer, ok in (
        ({"_target_": "torch.optim.RMSprop", "lr": 0.01, "fused": True}, True),
        ({"_target_": "torch.optim.Adam", "lr": 0.01, "fuse": True}, False),
    ):
        cfg = OmegaConf.create({"model": {**model, "optimizer": optimizer}})
        if ok:
            check_targets(cfg)
        else:
            with pytest.raises(ConfigError, match=r"did you mean model\.optimizer\.fused\?"):
                check_targets(cfg)


def test_every_upstream_range_names_a_parameter_lightning_still_has() -> None:
    """vaelab.config.upstream_ranges adds bounds to Lightning's Trainer arguments by name: an
    upgrade that renames or drops one must fail here, not silently stop checking it."""
    import lightning as L

    parameters = inspect.signature(L.Trainer.__init__).parameters
    ranges = ranges_for(L.Trainer)
    assert ranges, "no ranges for lightning.Trainer"
    for name, annotation in ranges.items():
        assert name in parameters, f"Trainer has no argument {name!r} any more"
        default = parameters[name].default
        if default is not inspect.Parameter.empty and default != "auto":
            assert fits(default, annotation), f"Trainer's default {name}={default!r} is refused"


@pytest.mark.parametrize(
    ("module", "conf_class"),
    [
        ("hydra_plugins.hydra_submitit_launcher.config", "SlurmQueueConf"),
        ("hydra_plugins.hydra_joblib_launcher.config", "JobLibLauncherConf"),
    ],
)
def test_every_plugin_range_names_a_setting_the_plugin_still_has(
    module: str, conf_class: str
) -> None:
    """The launcher and sweeper take **params: their settings are the fields of the
    plugin's structured config, which must still hold every key ranged here."""
    import dataclasses
    import importlib

    from vaelab.config.upstream_ranges import UPSTREAM

    fields = {
        f.name for f in dataclasses.fields(getattr(importlib.import_module(module), conf_class))
    }
    plugin = module.rsplit(".", 1)[0]
    (ranges,) = [r for m, _, r in UPSTREAM if m.startswith(plugin)]
    assert set(ranges()) <= fields, set(ranges()) - fields


#: Groups composed elsewhere in a whole (a recipe sets its method and setting; debug,
#: experiment and hparams_search change the run itself): tests/test_recipes.py,
#: tests/test_sweeps.py and the debug tests compose those.
WHOLE_RUN_GROUPS = ("debug", "experiment", "hparams_search", "method", "setting")
GROUP_OPTIONS = [
    f"{group}={option}"
    for group in config_groups()
    if group not in WHOLE_RUN_GROUPS
    for option in config_options(group)
]


def test_every_config_group_is_composed() -> None:
    groups = {choice.split("=")[0] for choice in GROUP_OPTIONS}
    assert {"data", "model", "model/encoder", "model/decoder", "likelihood", "objective"} <= groups
    assert set(config_groups()) == groups | set(WHOLE_RUN_GROUPS)


@pytest.mark.parametrize("choice", GROUP_OPTIONS)
def test_every_shipped_option_passes_its_own_rules(choice: str, hydra_conf, tmp_path) -> None:
    extra = ["data.path=/images"] if choice == "data=folder" else []
    cfg = compose_train(choice, *extra, run_dir=tmp_path)
    check_settings(cfg, TrainSettings)
    check_targets(cfg)


@pytest.mark.parametrize("app", sorted(APP_SETTINGS))
def test_every_own_key_of_an_app_is_declared(app: str, hydra_conf) -> None:
    """No key of conf/<app>.yaml escapes checking: each key that holds a value rather
    than a group is a field of the app's settings model (eval's and generate's
    `ckpt_path` is checked as a file instead), and each required field is a key of the
    config."""
    from hydra import compose

    cfg = compose(app)
    model = APP_SETTINGS[app]
    declared = set(model.model_fields)
    nested = {
        k
        for k, f in model.model_fields.items()
        if isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel)
    }
    values = {k for k in cfg if not isinstance(cfg._get_node(k), DictConfig)} | nested
    assert values - declared <= {"ckpt_path"}, values - declared
    # A field with a default is a key some options add (an experiment's `recipe`).
    required = {k for k, f in model.model_fields.items() if f.is_required()}
    assert required <= set(cfg), required - set(cfg)


def test_the_shipped_app_configs_pass_their_own_rules(hydra_conf) -> None:
    from hydra import compose

    for app, model in APP_SETTINGS.items():
        check_settings(compose(app), model)


def test_help_offers_each_group_exactly_its_options() -> None:
    """`python src/train.py --help` lists every group with the options a user may choose,
    and nothing else (no shared part such as the model presets' common keys)."""
    from in_process import call_train

    result = call_train("--help")
    assert result.returncode == 0, result.stderr
    listed = {
        line.split(":", 1)[0]: line.split(":", 1)[1].split(", ")
        for line in result.stdout.splitlines()
        if re.fullmatch(r"[a-z_/]+: [\w, ]+", line) and not line.startswith("hydra")
    }
    for group in config_groups():
        assert sorted(o.strip() for o in listed[group]) == sorted(config_options(group)), group
    assert not [o for options in listed.values() for o in options if o.strip().startswith("_")]
