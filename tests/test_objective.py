"""The β-weighted ELBO against an independent computation with torch.distributions."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import check_arguments, make_vae
from torch.distributions import Bernoulli, Independent, Normal, kl_divergence

from vaelab.errors import ConfigError
from vaelab.models import VAE
from vaelab.objectives import BetaVAE, Capacity, LatentBatch

MLP_ENC = {"_target_": "vaelab.models.backbones.MLPEncoder", "hidden": [32]}
MLP_DEC = {"_target_": "vaelab.models.backbones.MLPDecoder", "hidden": [32]}


def tiny_vae(beta: float = 1.0, **kwargs) -> VAE:
    torch.manual_seed(0)
    return make_vae(
        (1, 8, 8),
        latent_dim=3,
        encoder=MLP_ENC,
        decoder=MLP_DEC,
        objective={"_target_": "vaelab.objectives.BetaVAE", "beta": beta},
        **kwargs,
    )


@pytest.fixture
def binary_batch() -> torch.Tensor:
    return torch.bernoulli(
        torch.full((5, 1, 8, 8), 0.3), generator=torch.Generator().manual_seed(1)
    )


def independent_nelbo(model: VAE, x: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """−ELBO per example written from scratch: Normal posterior, one reparameterised
    sample drawn the same way, Bernoulli log-likelihood, analytic KL to N(0, I)."""
    mean, log_var = model.posterior_head(model.encoder(x)).chunk(2, dim=-1)
    std = torch.exp(0.5 * log_var)
    torch.manual_seed(seed)
    z = mean + std * torch.randn_like(std)
    log_px = Bernoulli(logits=model.decoder(z), validate_args=False).log_prob(x).sum((1, 2, 3))
    kl = kl_divergence(Normal(mean, std), Normal(torch.zeros_like(mean), torch.ones_like(std)))
    return -log_px, kl.sum(-1)


def test_loss_at_beta_one_is_negative_elbo(binary_batch: torch.Tensor) -> None:
    model = tiny_vae(beta=1.0)
    torch.manual_seed(7)
    objective, means = model.compute_objective(binary_batch)
    recon, kl = independent_nelbo(model, binary_batch, seed=7)
    assert objective.terms["beta"] == 1.0
    torch.testing.assert_close(means["recon"], recon.mean())
    torch.testing.assert_close(means["kl"], kl.mean())
    torch.testing.assert_close(objective.loss, (recon + kl).mean())
    # Units: summed over the 64 pixels, so a random model costs tens of nats, not < 1.
    assert objective.loss.item() > 64 * 0.3


def test_elbo_terms_are_per_example(binary_batch: torch.Tensor) -> None:
    model = tiny_vae()
    torch.manual_seed(3)
    terms = model.elbo(binary_batch)
    recon, kl = independent_nelbo(model, binary_batch, seed=3)
    assert set(terms) == {"recon", "kl", "nelbo"}
    for value in terms.values():
        assert value.shape == (5,)
    torch.testing.assert_close(terms["recon"], recon)
    torch.testing.assert_close(terms["kl"], kl)
    torch.testing.assert_close(terms["nelbo"], recon + kl)


def test_beta_two_minus_beta_one_is_the_kl(binary_batch: torch.Tensor) -> None:
    one, two = tiny_vae(beta=1.0), tiny_vae(beta=2.0)  # same seed: same weights
    torch.manual_seed(5)
    loss_one, means = one.compute_objective(binary_batch)
    torch.manual_seed(5)
    loss_two, _ = two.compute_objective(binary_batch)
    torch.testing.assert_close(loss_two.loss - loss_one.loss, means["kl"])
    assert means["kl"].item() > 0


def test_analytic_kl_matches_monte_carlo(binary_batch: torch.Tensor) -> None:
    model = tiny_vae()
    with torch.no_grad():
        posterior = model.encode(binary_batch)
        prior = Independent(Normal(torch.zeros(3), torch.ones(3)), 1)
        analytic = kl_divergence(posterior, prior)
        torch.manual_seed(0)
        z = posterior.sample((200_000,))
        monte_carlo = (posterior.log_prob(z) - model.prior.log_prob(z)).mean(0)
        torch.testing.assert_close(model.elbo(binary_batch)["kl"], analytic)
    torch.testing.assert_close(monte_carlo, analytic, atol=0.02, rtol=0.02)


def test_api_shapes_and_distributions(binary_batch: torch.Tensor) -> None:
    model = tiny_vae()
    posterior = model.encode(binary_batch)
    assert isinstance(posterior, Independent)
    assert posterior.batch_shape == (5,) and posterior.event_shape == (3,)
    likelihood = model.decode(posterior.rsample())
    assert likelihood.event_shape == (1, 8, 8)
    assert likelihood.log_prob(binary_batch).shape == (5,)
    samples = model.sample(7)
    assert samples.shape == (7, 1, 8, 8)
    assert samples.min() >= 0.0 and samples.max() <= 1.0
    assert model.reconstruct(binary_batch).shape == binary_batch.shape


def _means(recon: float, kl: float, step: int) -> LatentBatch:
    """A batch of one example whose recon and KL are the given values."""
    kl_per_dim = torch.tensor([[kl]])
    zeros = torch.zeros(1, 1)
    x = torch.zeros(1, 1, 1, 1)
    log_px = torch.tensor([-recon])
    return LatentBatch(x, zeros, zeros, zeros, log_px, kl_per_dim, step, lambda z, x: z)


def test_warmup_ramps_beta_linearly() -> None:
    objective = BetaVAE(beta=4.0, warmup_steps=100)
    assert objective(_means(10.0, 3.0, 0)).loss.item() == pytest.approx(10.0)
    mid = objective(_means(10.0, 3.0, 25))
    assert mid.terms["beta"] == pytest.approx(1.0) and mid.loss.item() == pytest.approx(13.0)
    assert objective(_means(10.0, 3.0, 1000)).terms["beta"] == pytest.approx(4.0)


def test_capacity_penalises_distance_from_capacity() -> None:
    objective = Capacity(gamma=100.0, c_max=20.0, c_steps=1000)
    at_half = objective(_means(50.0, 12.0, 500))  # C = 10
    assert at_half.terms["capacity"] == pytest.approx(10.0)
    assert at_half.loss.item() == pytest.approx(50.0 + 100.0 * 2.0)
    assert objective(_means(50.0, 8.0, 500)).loss.item() == pytest.approx(50.0 + 100.0 * 2.0)
    assert objective(_means(50.0, 20.0, 10_000)).loss.item() == pytest.approx(50.0)


def test_beta_vae_rejects_negative() -> None:
    with pytest.raises(ConfigError, match=r"objective\.beta=-1\.0 must be a number >= 0"):
        check_arguments("vaelab.objectives.BetaVAE", "objective", beta=-1.0)


def test_checkpoints_of_the_beta_schedule_era_load_as_objectives() -> None:
    """Checkpoints written before `objective=` name a `beta_schedule`; they still load."""
    legacy = {"_target_": "vaelab.objectives.LinearWarmup", "beta": 4.0, "warmup_steps": 10}
    model = make_vae(
        (1, 8, 8),
        latent_dim=3,
        encoder=MLP_ENC,
        decoder=MLP_DEC,
        objective=None,
        beta_schedule=legacy,
    )
    assert isinstance(model.objective, BetaVAE)
    assert (model.objective.beta, model.objective.warmup_steps) == (4.0, 10)
    assert model.hparams.objective["_target_"] == "vaelab.objectives.BetaVAE"


def test_training_reduces_the_loss(binary_batch: torch.Tensor) -> None:
    model = tiny_vae()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    torch.manual_seed(0)
    first = model.compute_objective(binary_batch)[0].loss.item()
    for _ in range(100):
        optimizer.zero_grad()
        model.compute_objective(binary_batch)[0].loss.backward()
        optimizer.step()
    with torch.no_grad():
        torch.manual_seed(0)
        last = model.compute_objective(binary_batch)[0].loss.item()
    assert last < first - 5.0, (first, last)
    assert math.isfinite(last)
