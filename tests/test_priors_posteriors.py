"""Priors (`prior=`) and posterior families (`posterior=`), checked against independent
computations: torch.distributions' mixtures and transformed distributions, Jacobians
by finite differences, the closed-form Gaussian KL; and every prior x posterior x
objective combination of conf/ trained a step on each data shape, or refused in one
line."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from helpers import compose_train, config_options, objective_choice
from test_combinations import data_shapes, example_batch, model_for_shape, shape_id
from torch.distributions import (
    Categorical,
    Independent,
    MixtureSameFamily,
    Normal,
    Transform,
    TransformedDistribution,
    constraints,
)

from vaelab.errors import ConfigError, find_user_error
from vaelab.models.flows import MADE, MaskedAutoregressiveFlow
from vaelab.models.posteriors import IAFPosterior, PlanarPosterior
from vaelab.models.priors import FlowPrior, MixturePrior, StandardNormal, VampPrior

D = 5


def randomise(module: torch.nn.Module, scale: float = 0.3) -> None:
    """Non-trivial parameters (the flows' last layers start at zero)."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=generator, dtype=p.dtype) * scale)


def finite_difference_log_det(f, z: torch.Tensor, h: float = 1e-6) -> float:
    """log|det ∂f/∂z| at one point z (D,) by central differences, in float64."""
    with torch.no_grad():
        return _finite_difference_log_det(f, z, h)


def _finite_difference_log_det(f, z: torch.Tensor, h: float) -> float:
    d = z.shape[0]
    jac = torch.empty(d, d, dtype=torch.float64)
    for i in range(d):
        step = torch.zeros(d, dtype=torch.float64)
        step[i] = h
        jac[:, i] = (f(z + step) - f(z - step)) / (2 * h)
    return float(torch.linalg.slogdet(jac).logabsdet)


# ------------------------------------------------------------------------ priors
def test_standard_normal_is_torch_normal_with_the_closed_form_kl() -> None:
    prior = StandardNormal(D)
    z = torch.randn(7, 3, D)
    reference = Independent(Normal(torch.zeros(D), torch.ones(D)), 1)
    torch.testing.assert_close(prior.log_prob(z), reference.log_prob(z))
    mean, log_var = torch.randn(4, D), torch.randn(4, D)
    std = torch.exp(0.5 * log_var)
    kl = torch.distributions.kl_divergence(Normal(mean, std), Normal(0.0, 1.0))
    torch.testing.assert_close(prior.kl_per_dim(mean, log_var, std), kl)


def test_mixture_prior_is_torch_mixture_same_family() -> None:
    prior = MixturePrior(D, components=4)
    randomise(prior)
    reference = MixtureSameFamily(
        Categorical(logits=prior.logits),
        Independent(Normal(prior.means, torch.exp(0.5 * prior.log_vars)), 1),
    )
    z = torch.randn(6, 2, D)
    torch.testing.assert_close(prior.log_prob(z), reference.log_prob(z))
    # draws follow the mixture: their mean is the weighted mean of the components
    draws = prior.sample(40_000, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(draws.mean(0), reference.mean, atol=0.05, rtol=0)


def test_vamp_prior_is_the_mixture_of_the_pseudo_inputs_posteriors() -> None:
    encoder = torch.nn.Linear(12, 2 * D)

    def encode(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_var = encoder(x.flatten(1)).chunk(2, dim=-1)
        return mean, log_var

    prior = VampPrior(D, data_shape=(1, 3, 4), components=6, init="data")
    prior.bind(encode)
    examples = torch.rand(20, 1, 3, 4)
    prior.initialise_from(examples)
    # init=data: each pseudo-input is one of the training examples
    assert all(any(torch.equal(u, x) for x in examples) for u in prior.pseudo_inputs)
    mean, log_var = encode(prior.pseudo_inputs.clamp(0, 1))
    reference = MixtureSameFamily(
        Categorical(logits=torch.zeros(6)), Independent(Normal(mean, torch.exp(0.5 * log_var)), 1)
    )
    z = torch.randn(9, D)
    torch.testing.assert_close(prior.log_prob(z), reference.log_prob(z))
    assert prior.sample(3).shape == (3, D)


def test_a_fresh_flow_prior_is_the_standard_normal() -> None:
    z = torch.randn(8, D)
    torch.testing.assert_close(FlowPrior(D).log_prob(z), StandardNormal(D).log_prob(z))


def test_maf_density_is_the_change_of_variables_and_sampling_inverts_it() -> None:
    flow = MaskedAutoregressiveFlow(D, layers=3, hidden=(16, 16)).double()
    randomise(flow)
    z = torch.randn(4, D, dtype=torch.float64)
    u, log_det = flow.to_base(z)
    for i in range(4):
        expected = finite_difference_log_det(lambda v: flow.to_base(v.unsqueeze(0))[0][0], z[i])
        assert float(log_det[i].detach()) == pytest.approx(expected, abs=1e-6)
    torch.testing.assert_close(flow.from_base(u.detach()), z)  # sampling is the exact inverse


def test_made_outputs_depend_only_on_earlier_inputs_in_its_order() -> None:
    order = torch.tensor([2, 0, 4, 1, 3])
    made = MADE(D, [20, 20], n_outputs=2, order=order)
    randomise(made)
    x = torch.randn(1, D, requires_grad=True)
    position = torch.empty(D, dtype=torch.long)
    position[order] = torch.arange(D)
    for out in made(x):
        for i in range(D):
            (grad,) = torch.autograd.grad(out[0, i], x, retain_graph=True)
            depends = grad[0].abs() > 0
            assert all(position[j] < position[i] for j in range(D) if depends[j]), (i, depends)


# -------------------------------------------------------------------- posteriors
class _AsTransform(Transform):
    """A posterior's flow with its context bound, as a torch Transform: the forward map
    and its log-determinant. TransformedDistribution.log_prob of a value this transform
    produced reads z0 from the transform's cache, so no inverse is needed."""

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True

    def __init__(self, posterior, context: torch.Tensor) -> None:
        super().__init__(cache_size=1)
        self.posterior, self.context = posterior, context

    def _call(self, z0: torch.Tensor) -> torch.Tensor:
        return self.posterior.flow(z0, self.context)[0]

    def log_abs_det_jacobian(self, z0: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.posterior.flow(z0, self.context)[1]


@pytest.mark.parametrize("family", ["iaf", "planar"])
def test_flow_posterior_log_q_is_torch_transformed_distribution_and_finite_differences(
    family: str,
) -> None:
    posterior = (
        IAFPosterior(D, steps=2, hidden=(16,), context=6)
        if family == "iaf"
        else PlanarPosterior(D, steps=3)
    ).double()
    randomise(posterior, 0.5)
    b = 3
    context = torch.randn(b, posterior.context_features, dtype=torch.float64)
    mean, log_var = (
        torch.randn(b, D, dtype=torch.float64),
        0.3 * torch.randn(b, D, dtype=torch.float64),
    )
    eps = torch.randn(b, D, dtype=torch.float64)
    z0 = mean + torch.exp(0.5 * log_var) * eps
    z, log_det = posterior.flow(z0, context)
    log_q = Independent(Normal(mean, torch.exp(0.5 * log_var)), 1).log_prob(z0) - log_det

    transform = _AsTransform(posterior, context)
    base = Independent(Normal(mean, torch.exp(0.5 * log_var)), 1)
    reference = TransformedDistribution(base, [transform])
    torch.testing.assert_close(reference.log_prob(transform(z0)), log_q)
    for i in range(b):
        expected = finite_difference_log_det(
            lambda v, i=i: posterior.flow(v.unsqueeze(0), context[i : i + 1])[0][0], z0[i]
        )
        assert float(log_det[i].detach()) == pytest.approx(expected, abs=1e-6)
    # leading sample dimensions broadcast against the batch's context (IWAE's draws)
    many, many_log_det = posterior.flow(z0.expand(4, b, D), context)
    torch.testing.assert_close(many[2], z)
    torch.testing.assert_close(many_log_det[2], log_det)


# ----------------------------------------------------------------- in the model
def _model(*overrides: str):
    from vaelab.config.build import build_model

    cfg = compose_train("data=digits", "~model/scheduler", *overrides)

    class Data:
        dims, levels = (1, 8, 8), None

    torch.manual_seed(0)
    return build_model(cfg, Data())


def test_the_default_prior_and_posterior_train_exactly_as_before_they_existed(hydra_conf) -> None:
    """prior=normal posterior=gaussian is the model of a checkpoint without them, bit for
    bit: the same parameters, loss and gradients."""
    from vaelab.models import VAE

    new = _model()
    hp = {k: v for k, v in new.hparams.items() if k not in ("prior", "posterior")}
    torch.manual_seed(0)
    old = VAE(**hp)  # as a checkpoint written before prior= and posterior= loads
    assert [n for n, _ in new.named_parameters()] == [n for n, _ in old.named_parameters()]
    x = example_batch((1, 8, 8), None, n=16)
    noise = torch.randn(16, new.latent_dim)
    for model in (new, old):
        model.load_state_dict(new.state_dict())
    out_new, _ = new.compute_objective(x, noise=noise)
    out_old, _ = old.compute_objective(x, noise=noise)
    assert torch.equal(out_new.loss, out_old.loss)
    assert new.analytic_kl and new.kl_estimate == "analytic"


def test_the_single_sample_kl_averages_to_the_closed_form(hydra_conf) -> None:
    """A one-component mixture fixed at N(0, I): its single-sample KL, averaged over
    draws, is the analytic KL of the same posterior."""
    model = _model("prior=mog", "prior.components=1")
    with torch.no_grad():
        model.prior.means.zero_()
        model.prior.log_vars.zero_()
    assert model.kl_estimate == "single-sample"
    x = example_batch((1, 8, 8), None, n=4)
    mean, log_var = model.posterior_params(x)
    analytic = (
        StandardNormal(model.latent_dim).kl_per_dim(mean, log_var, torch.exp(0.5 * log_var)).sum(-1)
    )
    torch.manual_seed(3)
    draws = torch.stack([model.latent_batch(x).kl for _ in range(4000)])
    torch.testing.assert_close(draws.mean(0), analytic, atol=0.15, rtol=0.02)


@pytest.mark.parametrize(
    "overrides", [("prior=flow",), ("posterior=iaf",), ("prior=vamp", "prior.components=7")]
)
def test_the_iwae_bounds_use_the_prior_and_the_flow(overrides: tuple[str, ...], hydra_conf) -> None:
    """The objective's −L_k and the test stage's −L_k agree with log weights written
    out from the parts (log p(x|z) + log p(z) − log q(z|x)), and k = 1 is the −ELBO."""
    from vaelab.metrics.likelihood import iwae_nll
    from vaelab.objectives.iwae import iwae_bound

    model = _model(*overrides)
    if overrides[0] != "prior=vamp":
        randomise(model.prior if overrides[0] == "prior=flow" else model.posterior, 0.2)
    x = example_batch((1, 8, 8), None, n=3)
    torch.manual_seed(0)
    batch = model.latent_batch(x)
    torch.manual_seed(1)
    bound = iwae_bound(batch, k=6)
    # the same draws by hand: the batch's own z, then 5 fresh ones
    torch.manual_seed(1)
    extra, log_q_extra = batch.draws.draw(5)
    z = torch.cat([batch.z[None], extra])
    log_q = torch.cat([batch.log_qz_x[None], log_q_extra])
    log_px = torch.stack([model._log_likelihood(zs, x) for zs in z])
    log_w = log_px + model.prior.log_prob(z) - log_q
    torch.testing.assert_close(bound, math.log(6) - torch.logsumexp(log_w, 0))

    # The test stage's bound at k = 1 with the batch's own noise is its −ELBO.
    mean, log_var, context = model._posterior_outputs(x)
    torch.manual_seed(0)
    eps = torch.randn_like(mean)  # the draw latent_batch took under the same seed
    posterior = Independent(Normal(mean, torch.exp(0.5 * log_var)), 1)
    flow, log_prior = model._iwae_densities(context)
    nll = iwae_nll(
        x,
        posterior,
        model.decode,
        1,
        noise=lambda n: eps.unsqueeze(1),
        flow=flow,
        log_prior=log_prior,
    )
    torch.testing.assert_close(nll, (batch.recon + batch.kl).detach(), atol=1e-3, rtol=1e-5)


# ------------------------------------------------------------ from conf/, all of it
LATENT_COMBINATIONS = list(
    itertools.product(
        config_options("prior"), config_options("posterior"), config_options("objective")
    )
)


def test_the_latent_combinations_come_from_conf() -> None:
    assert {"normal", "mog", "vamp", "flow"} <= set(config_options("prior"))
    assert {"gaussian", "iaf", "planar"} <= set(config_options("posterior"))
    assert len(LATENT_COMBINATIONS) >= 4 * 3 * 8


@pytest.mark.parametrize(("prior", "posterior", "objective"), LATENT_COMBINATIONS)
def test_each_prior_posterior_objective_trains_a_step_or_is_refused_in_one_line(
    prior: str, posterior: str, objective: str, hydra_conf
) -> None:

    cfg = compose_train(
        f"prior={prior}", f"posterior={posterior}", *objective_choice(objective), "~model/scheduler"
    )
    # What the objectives' papers define them for (written out here, apart from the code):
    # β-TCVAE and DIP-VAE assume N(0, I) and a Gaussian posterior; the VQ-VAE has its own
    # uniform prior over codes and a point-mass posterior.
    must_refuse = objective in ("beta_tcvae", "dip_vae_i", "dip_vae_ii", "vq") and (
        prior,
        posterior,
    ) != ("normal", "gaussian")
    for dims, levels in data_shapes():
        vae = model_for_shape(cfg, dims, levels)
        if isinstance(vae, ConfigError):
            # refused for the latent family, on every data shape alike, naming the fix
            assert must_refuse, vae
            assert "prior=normal" in str(vae) or "posterior=gaussian" in str(vae)
            continue
        assert not must_refuse, (prior, posterior, objective)
        vae.objective.set_dataset_size(1000)
        optimizers = vae.configure_optimizers()
        before = [p.detach().clone() for p in vae.parameters()]
        # Two steps: a flow's output layer starts at zero, so its hidden layers get a
        # gradient from the second step on.
        for step in (10, 11):
            for optimizer in optimizers:
                optimizer.zero_grad()
            out, means = vae.compute_objective(example_batch(dims, levels), step=step)
            (out.loss if out.own_loss is None else out.loss + out.own_loss).backward()
            for optimizer in optimizers:
                optimizer.step()
        where = (prior, posterior, objective, shape_id((dims, levels)))
        assert torch.isfinite(out.loss) and torch.isfinite(means["kl"]), where
        moved = [not torch.equal(a, b) for a, b in zip(before, vae.parameters(), strict=True)]
        assert all(moved), where  # the prior's and the flow's parameters too
        if objective == "vq":
            assert vae.kl_estimate == "constant"
        else:
            assert vae.kl_estimate == (
                "analytic" if (prior, posterior) == ("normal", "gaussian") else "single-sample"
            )


REFUSED = {
    ("beta_tcvae", "prior"),
    ("dip_vae_i", "prior"),
    ("dip_vae_ii", "prior"),
    ("beta_tcvae", "posterior"),
    ("dip_vae_i", "posterior"),
    ("dip_vae_ii", "posterior"),
}


@pytest.mark.parametrize(("objective", "what"), sorted(REFUSED))
def test_objectives_defined_for_the_standard_gaussian_refuse_other_families(
    objective: str, what: str, hydra_conf
) -> None:
    override = "prior=mog" if what == "prior" else "posterior=iaf"
    with pytest.raises(Exception) as caught:
        _model(f"objective={objective}", override)
    error = find_user_error(caught.value)
    assert isinstance(error, ConfigError)
    assert f"{what}=" in str(error) and "\n" not in str(error)


def test_vamp_prior_under_a_flow_posterior_mixes_the_pseudo_inputs_base_gaussians(
    hydra_conf,
) -> None:
    model = _model("prior=vamp", "prior.components=4", "posterior=iaf")
    mean, log_var = model.posterior_params(model.prior.pseudo_inputs.clamp(0, 1))
    reference = MixtureSameFamily(
        Categorical(logits=torch.zeros(4)), Independent(Normal(mean, torch.exp(0.5 * log_var)), 1)
    )
    z = torch.randn(5, model.latent_dim)
    torch.testing.assert_close(model.prior.log_prob(z), reference.log_prob(z))


def test_continuing_a_checkpoint_needs_its_prior_and_posterior(hydra_conf) -> None:
    """A checkpoint from before these groups existed continues under the defaults; one
    trained with another prior or posterior is refused in one line naming it."""
    from vaelab.errors import CheckpointError
    from vaelab.runs.checkpoints import check_same_model

    default = _model()
    old = {k: v for k, v in default.hparams.items() if k not in ("prior", "posterior")}
    check_same_model({"hyper_parameters": old}, default.hparams)
    for overrides, key in ((("prior=vamp",), "prior"), (("posterior=planar",), "posterior")):
        other = _model(*overrides)
        with pytest.raises(CheckpointError) as refused:
            check_same_model({"hyper_parameters": dict(other.hparams)}, default.hparams)
        assert f"{key}=" in str(refused.value) and "\n" not in str(refused.value)
