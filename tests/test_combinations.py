"""Every backbone x likelihood x objective combination trains one step on each data
shape, all read from conf/: a new option in any of those groups is covered without
editing this file.

The backbones are the model presets (encoder and decoder of one kind; mixed pairs are
composed in tests/test_backbones.py); the data shapes are those of every data config,
(C, H, W) with the data's levels, as its module reports them. A combination that
cannot work (a conv stack too deep for 8x8 images, a discrete likelihood on continuous
data) must be refused by a ConfigError when the model is built, the one line a user
sees, never fail inside the step.
"""

from __future__ import annotations

import functools
import itertools
from pathlib import Path

import pytest
import torch
from helpers import compose_train, config_options, objective_choice

from vaelab.errors import ConfigError, find_user_error


@functools.cache
def data_shapes() -> list[tuple[tuple[int, ...], int | None]]:
    """(dims, levels) of every data config, each distinct pair once."""
    from helpers import compose_anywhere
    from hydra.utils import instantiate

    from vaelab.config.resolvers import register_resolvers

    register_resolvers()
    shapes = set()
    for option in config_options("data"):
        overrides = (
            [f"data={option}", "data.path=/images"] if option == "folder" else [f"data={option}"]
        )
        data = instantiate(compose_anywhere(*overrides).data)
        shapes.add((tuple(int(d) for d in data.dims), data.levels))
    return sorted(shapes, key=str)


def shape_id(shape: tuple[tuple[int, ...], int | None]) -> str:
    dims, levels = shape
    return "x".join(map(str, dims)) + f"-{levels or 'continuous'}"


def example_batch(dims: tuple[int, ...], levels: int | None, n: int = 4) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    if levels is None:
        return torch.rand(n, *dims, generator=generator)
    return torch.randint(0, levels, (n, *dims), generator=generator) / (levels - 1)


def model_for_shape(cfg, dims: tuple[int, ...], levels: int | None):
    """The VAE `cfg` builds for data of shape `dims` with `levels`, or the `ConfigError`
    that refused it, asserted to be the one line a user sees."""
    from vaelab.config.build import build_model

    class Data:  # what build_model reads from a DataModule
        pass

    Data.dims, Data.levels = dims, levels
    torch.manual_seed(0)
    try:
        return build_model(cfg, Data())
    except Exception as exc:  # Hydra's instantiate wraps what a constructor raises
        user_error = find_user_error(exc)
        assert isinstance(user_error, ConfigError), exc
        assert "\n" not in str(user_error)  # one line, as the preflight shows it
        return user_error


COMBINATIONS = list(
    itertools.product(
        config_options("model"), config_options("likelihood"), config_options("objective")
    )
)


def test_the_combinations_and_shapes_come_from_conf() -> None:
    assert len(COMBINATIONS) == (
        len(config_options("model"))
        * len(config_options("likelihood"))
        * len(config_options("objective"))
    )
    assert len(COMBINATIONS) >= 3 * 3 * 7  # the shipped options are all found
    dims = {d for d, _ in data_shapes()}
    assert {(1, 28, 28), (3, 32, 32), (1, 64, 64), (3, 64, 64), (1, 8, 8)} <= dims


@pytest.mark.parametrize(("model", "likelihood", "objective"), COMBINATIONS)
def test_each_combination_trains_a_step_on_each_data_shape(
    model: str, likelihood: str, objective: str, hydra_conf, tmp_path: Path
) -> None:
    # No learning-rate schedule: sizing one needs a trainer (tests/test_lr_schedule.py).
    cfg = compose_train(
        f"model={model}",
        f"likelihood={likelihood}",
        *objective_choice(objective),
        "~model/scheduler",
    )
    trained, refused = [], []
    for dims, levels in data_shapes():
        vae = model_for_shape(cfg, dims, levels)
        if isinstance(vae, ConfigError):
            refused.append(shape_id((dims, levels)))
            continue
        vae.objective.set_dataset_size(1000)
        optimizers = vae.configure_optimizers()
        before = [p.detach().clone() for p in vae.parameters()]
        out, means = vae.compute_objective(example_batch(dims, levels), step=10)
        (out.loss if out.own_loss is None else out.loss + out.own_loss).backward()
        for optimizer in optimizers:
            optimizer.step()
        where = (model, likelihood, objective, shape_id((dims, levels)))
        assert torch.isfinite(out.loss), where
        assert torch.isfinite(means["recon"]) and torch.isfinite(means["kl"]), where
        assert set(out.terms) == type(vae.objective).terms, where  # what it declares it logs
        moved = [not torch.equal(a, b) for a, b in zip(before, vae.parameters(), strict=True)]
        assert all(moved), where  # the VAE's parameters and the objective's own
        trained.append(shape_id((dims, levels)))
    assert trained, f"no data shape trains with {model}, {likelihood}, {objective}: {refused}"
