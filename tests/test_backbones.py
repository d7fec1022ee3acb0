"""Backbones are shape-generic and every config combination builds a working VAE."""

from __future__ import annotations

import itertools

import pytest
import torch
from helpers import CONF, compose_train, config_options

from vaelab.errors import ConfigError
from vaelab.models.backbones import ConvEncoder
from vaelab.models.backbones._common import make_activation

SHAPES = [(1, 28, 28), (1, 64, 64), (3, 32, 32), (3, 64, 64)]
#: Each encoder with the decoder of the same option name (conf/model/encoder, decoder).
PAIRS = [
    name for name in config_options("model/encoder") if name in config_options("model/decoder")
]


def backbone(group: str, name: str, **data_arguments):
    """The backbone conf/<group>/<name>.yaml builds, given what the VAE passes it."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    return instantiate(OmegaConf.load(CONF / group / f"{name}.yaml"), **data_arguments)


def test_the_shipped_pairs_are_found() -> None:
    assert {"mlp", "conv", "resnet"} <= set(PAIRS)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("pair", PAIRS)
def test_backbone_round_trips_shape(pair, shape) -> None:
    encoder = backbone("model/encoder", pair, in_shape=shape)
    decoder = backbone("model/decoder", pair, latent_dim=6, out_shape=(2 * shape[0], *shape[1:]))
    features = encoder(torch.rand(3, *shape))
    assert features.shape == (3, encoder.out_features)
    assert decoder(torch.randn(3, 6)).shape == (3, 2 * shape[0], *shape[1:])


def test_too_deep_conv_for_small_images_says_what_to_do() -> None:
    with pytest.raises(ConfigError, match=r"too many for 8x8 inputs; give it at most 3"):
        ConvEncoder(in_shape=(1, 8, 8), channels=[8, 8, 8, 8])


def test_unknown_activation_is_a_config_error() -> None:
    assert isinstance(make_activation("SiLU"), torch.nn.SiLU)
    with pytest.raises(ConfigError, match="Relu"):
        make_activation("Relu")


COMBOS = list(
    itertools.product(
        config_options("model"),
        config_options("model/encoder"),
        config_options("model/decoder"),
        config_options("likelihood"),
    )
)


def test_the_combinations_come_from_conf() -> None:
    """Read from conf/, so a new option is picked up without editing this file; the
    shipped ones are among them (a glob that finds nothing would test nothing)."""
    assert {"conv", "mlp", "resnet"} <= set(config_options("model"))
    assert {"bernoulli", "discretized_logistic", "gaussian"} <= set(config_options("likelihood"))
    assert "_shared" not in config_options("model")  # a shared part, not a preset
    assert len(COMBOS) >= 81


@pytest.mark.parametrize(("model", "encoder", "decoder", "likelihood"), COMBOS)
def test_config_combination_composes_and_instantiates(
    hydra_conf, model, encoder, decoder, likelihood
) -> None:
    from vaelab.config.build import build_model

    cfg = compose_train(
        f"model={model}",
        f"model/encoder={encoder}",
        f"model/decoder={decoder}",
        f"likelihood={likelihood}",
    )
    assert cfg.model.encoder._target_.lower().endswith(f"{encoder}encoder")
    assert cfg.model.decoder._target_.lower().endswith(f"{decoder}decoder")

    class Data:  # what build_model reads from a DataModule
        dims = (3, 32, 32)
        levels = 256

    vae = build_model(cfg, Data())
    x = torch.randint(0, 256, (2, 3, 32, 32)) / 255.0
    terms = vae.elbo(x)
    assert terms["nelbo"].shape == (2,) and torch.isfinite(terms["nelbo"]).all()
    assert type(vae.likelihood).__name__.lower().startswith(likelihood.replace("_", ""))
