"""Likelihoods are proper distributions over one image, in nats."""

from __future__ import annotations

import pytest
import torch
from helpers import CONF, check_arguments, config_options
from torch.distributions import Normal

from vaelab.errors import ConfigError
from vaelab.likelihoods import (
    BernoulliLikelihood,
    DiscretizedLogistic,
    DiscretizedLogisticLikelihood,
    GaussianLikelihood,
)


def test_discretized_logistic_masses_sum_to_one() -> None:
    loc = torch.tensor([0.0, 0.3, 0.5, 0.97, 1.0])
    log_scale = torch.tensor([-3.0, -1.0, -5.0, 0.0, -2.0])
    levels = torch.arange(256) / 255.0
    dist = DiscretizedLogistic(loc[:, None], log_scale[:, None], n_bins=256)
    mass = dist.log_prob(levels[None, :].expand(5, 256)).exp().sum(-1)
    torch.testing.assert_close(mass, torch.ones(5), atol=1e-4, rtol=0)


def test_discretized_logistic_equals_logistic_cdf_over_bins() -> None:
    # Independent: a logistic built from torch.distributions transforms, its CDF
    # differenced over each bin, with the end bins open to -inf / +inf.
    from torch.distributions import (
        AffineTransform,
        SigmoidTransform,
        TransformedDistribution,
        Uniform,
    )

    loc, scale = torch.tensor(0.4, dtype=torch.float64), torch.tensor(0.05, dtype=torch.float64)
    logistic = TransformedDistribution(
        Uniform(torch.tensor(0.0, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64)),
        [SigmoidTransform().inv, AffineTransform(loc, scale)],
    )
    levels = torch.arange(256, dtype=torch.float64) / 255.0
    upper, lower = logistic.cdf(levels + 0.5 / 255), logistic.cdf(levels - 0.5 / 255)
    upper[-1], lower[0] = 1.0, 0.0
    expected = torch.log(upper - lower)
    dist = DiscretizedLogistic(loc.float().expand(256), scale.log().float().expand(256))
    got = dist.log_prob(levels.float()).double()
    assert expected.min() < -10  # the far tail is covered too
    torch.testing.assert_close(got, expected, atol=2e-3, rtol=1e-3)


def test_discretized_logistic_samples_lie_on_the_grid() -> None:
    dist = DiscretizedLogistic(torch.rand(1000), torch.full((1000,), -2.0))
    x = dist.sample()
    torch.testing.assert_close(x * 255, (x * 255).round())
    assert x.min() >= 0 and x.max() <= 1


def test_gaussian_log_prob_matches_torch_normal() -> None:
    likelihood = GaussianLikelihood(channels=3, sigma=0.2)
    params, x = torch.randn(4, 3, 5, 5), torch.rand(4, 3, 5, 5)
    expected = Normal(params, 0.2).log_prob(x).sum((1, 2, 3))
    torch.testing.assert_close(likelihood(params).log_prob(x), expected)
    assert not list(likelihood.parameters())  # fixed sigma learns nothing


@pytest.mark.parametrize(("mode", "shape"), [("global", (1, 1, 1)), ("channel", (3, 1, 1))])
def test_gaussian_learned_sigma(mode: str, shape: tuple[int, ...]) -> None:
    likelihood = GaussianLikelihood(channels=3, sigma=0.5, learn_sigma=mode)
    (log_sigma,) = likelihood.parameters()
    assert log_sigma.shape == shape
    x = torch.rand(2, 3, 4, 4)
    loss = -likelihood(torch.zeros_like(x)).log_prob(x).sum()
    loss.backward()
    assert log_sigma.grad is not None and torch.isfinite(log_sigma.grad).all()


def test_bernoulli_is_binary_cross_entropy_on_grey_levels() -> None:
    logits, x = torch.randn(2, 1, 4, 4), torch.rand(2, 1, 4, 4)
    expected = -torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none")
    torch.testing.assert_close(BernoulliLikelihood(1)(logits).log_prob(x), expected.sum((1, 2, 3)))


def shipped_and_configured() -> list:
    """Every option of conf/likelihood/ as its config builds it, and a learnt σ."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    configured = [
        instantiate(OmegaConf.load(CONF / "likelihood" / f"{option}.yaml"), channels=3)
        for option in config_options("likelihood")
    ]
    return [*configured, GaussianLikelihood(3, sigma=0.2, learn_sigma="channel")]


@pytest.mark.parametrize("likelihood", shipped_and_configured(), ids=lambda lik: lik.name)
def test_training_log_prob_equals_the_distribution(likelihood) -> None:
    # The training step calls `likelihood.log_prob(params, x)`; it must be the
    # distribution's log_prob, whatever shortcut a subclass takes.
    params = torch.randn(4, 3 * likelihood.params_per_channel, 5, 5)
    x = torch.randint(0, 256, (4, 3, 5, 5)) / 255.0
    expected = likelihood(params).log_prob(x)
    assert expected.shape == (4,)
    torch.testing.assert_close(likelihood.log_prob(params, x), expected)
    if isinstance(likelihood, BernoulliLikelihood):
        reference = torch.distributions.Bernoulli(logits=params, validate_args=False)
        torch.testing.assert_close(
            likelihood.log_prob(params, x), reference.log_prob(x).sum((1, 2, 3))
        )


def test_discretized_logistic_refuses_binary_data() -> None:
    with pytest.raises(ConfigError, match="likelihood=bernoulli"):
        DiscretizedLogisticLikelihood(1).check_data(levels=2)
    DiscretizedLogisticLikelihood(3).check_data(levels=256)


def test_gaussian_rejects_bad_settings() -> None:
    target = "vaelab.likelihoods.GaussianLikelihood"
    with pytest.raises(
        ConfigError, match="learn_sigma='pixel' must be one of none, global, channel"
    ):
        check_arguments(target, "likelihood", learn_sigma="pixel")
    with pytest.raises(ConfigError, match=r"likelihood\.sigma=0\.0 must be a number > 0"):
        check_arguments(target, "likelihood", sigma=0.0)
