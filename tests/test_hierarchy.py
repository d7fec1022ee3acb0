"""Latent groups (`latent=`): the bottom-up hierarchy and the ladder checked against
torch.distributions' Gaussians and KLs, finite-difference Jacobians and Monte Carlo
averages; the one-group model bit for bit as before; every latent x objective of conf/
trained two steps on every data shape or refused in one line; and a hierarchy through
the apps: logged keys, kill -9 and resume, a sweep that compare reads."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import pytest
import torch
from helpers import compose_train, config_options
from in_process import call_sweep, killed_and_resumed
from test_combinations import data_shapes, example_batch, model_for_shape, shape_id
from test_metric_names import smoke_run
from test_priors_posteriors import _model, finite_difference_log_det, randomise
from torch.distributions import Independent, Normal, kl_divergence

from vaelab.errors import CheckpointError, ConfigError, find_user_error
from vaelab.models.flows import soft_clamp
from vaelab.models.hierarchy import (
    LOG_VAR_BOUND,
    BottomUpHierarchy,
    Hierarchy,
    LadderHierarchy,
)

SIZES = {"latent_dim": 3, "features": 6, "groups": [2, 2], "hidden": [5]}


def _hierarchy(kind: type[Hierarchy]) -> Hierarchy:
    hierarchy = kind(**SIZES).double()
    randomise(hierarchy, 0.5)
    return hierarchy


def _normal(mean: torch.Tensor, log_var: torch.Tensor) -> Independent:
    return Independent(Normal(mean, torch.exp(0.5 * log_var)), 1)


def _params(layer: torch.nn.Module, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean, log_var = layer(h)
    return mean, log_var


# ------------------------------------------------------------- the densities
def test_a_bottom_up_draw_has_the_densities_of_its_gaussians() -> None:
    hierarchy = _hierarchy(BottomUpHierarchy)
    h, eps = torch.randn(4, 6, dtype=torch.float64), torch.randn(4, 7, dtype=torch.float64)
    chain = hierarchy.chain(eps, h)
    z1, z2, z3 = chain.z.split([3, 2, 2], dim=-1)
    # q(z1|x) from the head, q(z2|z1), q(z3|z2) from the group below
    head = hierarchy.head(h)
    q = [
        _normal(head[:, :3], soft_clamp(head[:, 3:], LOG_VAR_BOUND)),
        _normal(*_params(hierarchy.bottom_up[0], z1)),
        _normal(*_params(hierarchy.bottom_up[1], z2)),
    ]
    torch.testing.assert_close(z1, q[0].mean + q[0].stddev * eps[:, :3])
    # p(z3) = N(0, I), p(z2|z3), p(z1|z2)
    p = [
        _normal(*_params(hierarchy.top_down[0], z2)),
        _normal(*_params(hierarchy.top_down[1], z3)),
        _normal(torch.zeros(4, 2, dtype=torch.float64), torch.zeros(4, 2, dtype=torch.float64)),
    ]
    log_q = [qi.log_prob(zi) for qi, zi in zip(q, (z1, z2, z3), strict=True)]
    log_p = [pi.log_prob(zi) for pi, zi in zip(p, (z1, z2, z3), strict=True)]
    torch.testing.assert_close(chain.log_q, sum(log_q))
    torch.testing.assert_close(chain.log_p, sum(log_p))
    torch.testing.assert_close(hierarchy.log_prior(chain.z), chain.log_p)
    # the top group's KL in closed form, the others single-sample (p depends on the draw)
    torch.testing.assert_close(chain.kl["z3"], kl_divergence(q[2], p[2]))
    torch.testing.assert_close(chain.kl["z1"], log_q[0] - log_p[0])
    torch.testing.assert_close(chain.kl["z2"], log_q[1] - log_p[1])


def test_a_ladder_merges_its_estimates_with_the_top_down_prior_by_precision() -> None:
    hierarchy = _hierarchy(LadderHierarchy)
    h, eps = torch.randn(4, 6, dtype=torch.float64), torch.randn(4, 7, dtype=torch.float64)
    chain = hierarchy.chain(eps, h)
    z1, z2, z3 = chain.z.split([3, 2, 2], dim=-1)
    d1 = h
    d2 = hierarchy.deterministic[0](d1)
    d3 = hierarchy.deterministic[1](d2)
    estimates = [hierarchy.estimates[i](d) for i, d in enumerate((d1, d2, d3))]
    sizes = (3, 2, 2)
    q_params = [
        (e[:, :s], soft_clamp(e[:, s:], LOG_VAR_BOUND).exp())
        for e, s in zip(estimates, sizes, strict=True)
    ]  # (mean, variance)
    # the top group: its estimate itself; below, 1/var = 1/var_estimate + 1/var_prior
    q = [None, None, Normal(q_params[2][0], q_params[2][1].sqrt())]
    p = [None, None, Normal(torch.zeros_like(z3), torch.ones_like(z3))]
    for level, above in ((1, z3), (0, z2)):
        p_mean, p_log_var = _params(hierarchy.top_down[level], above)
        p_var = p_log_var.exp()
        e_mean, e_var = q_params[level]
        var = 1 / (1 / e_var + 1 / p_var)
        q[level] = Normal((e_mean / e_var + p_mean / p_var) * var, var.sqrt())
        p[level] = Normal(p_mean, p_var.sqrt())
    for level, (name, z) in enumerate(zip(("z1", "z2", "z3"), (z1, z2, z3), strict=True)):
        torch.testing.assert_close(chain.kl[name], kl_divergence(q[level], p[level]).sum(-1))
        assert q[level] is not None
        torch.testing.assert_close(z, q[level].mean + q[level].stddev * eps.split(sizes, -1)[level])
    log_q = sum(qi.log_prob(zi).sum(-1) for qi, zi in zip(q, (z1, z2, z3), strict=True))
    log_p = sum(pi.log_prob(zi).sum(-1) for pi, zi in zip(p, (z1, z2, z3), strict=True))
    torch.testing.assert_close(chain.log_q, log_q)
    torch.testing.assert_close(chain.log_p, log_p)
    torch.testing.assert_close(hierarchy.log_prior(chain.z), chain.log_p)


@pytest.mark.parametrize("kind", [BottomUpHierarchy, LadderHierarchy])
def test_a_hierarchy_is_a_flow_from_noise_whose_log_det_is_the_jacobians(
    kind: type[Hierarchy],
) -> None:
    """ε -> z is triangular: log q(z|x) = log N(ε) − log|det ∂z/∂ε|, with the determinant
    taken by finite differences here."""
    from vaelab.models.hierarchy import HierarchyPosterior

    hierarchy = _hierarchy(kind)
    posterior = HierarchyPosterior(hierarchy, features=6)
    h, eps = torch.randn(3, 6, dtype=torch.float64), torch.randn(3, 7, dtype=torch.float64)
    _, log_det = posterior.flow(eps, h)
    for i in range(3):
        expected = finite_difference_log_det(
            lambda v, i=i: hierarchy.chain(v.unsqueeze(0), h[i : i + 1]).z[0], eps[i]
        )
        assert float(log_det[i].detach()) == pytest.approx(expected, abs=1e-6)
    # leading sample dimensions broadcast against the batch's features (IWAE's draws)
    many = hierarchy.chain(eps.expand(5, 3, 7), h)
    torch.testing.assert_close(many.z[3], hierarchy.chain(eps, h).z)


@pytest.mark.parametrize("kind", [BottomUpHierarchy, LadderHierarchy])
def test_the_groups_kls_average_to_the_single_sample_kl(kind: type[Hierarchy]) -> None:
    """Closed-form and single-sample group KLs are both unbiased: over many draws their
    sum averages to E[log q(z|x) − log p(z)]."""
    hierarchy = _hierarchy(kind)
    h = torch.randn(2, 6, dtype=torch.float64)
    eps = torch.randn(
        200_000, 2, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(0)
    )
    with torch.no_grad():
        chain = hierarchy.chain(eps, h)
    grouped = sum(chain.kl.values()).mean(0)
    single = (chain.log_q - chain.log_p).mean(0)
    spread = (chain.log_q - chain.log_p).std(0) / math.sqrt(len(eps))
    assert torch.all((grouped - single).abs() < 5 * spread), (grouped, single, spread)


def test_prior_samples_follow_the_prior_chain() -> None:
    hierarchy = _hierarchy(LadderHierarchy)
    with torch.no_grad():
        z = hierarchy.sample_prior(100_000, generator=torch.Generator().manual_seed(0))
        z1, z2, z3 = z.double().split([3, 2, 2], dim=-1)
        # the top group is N(0, I); each group below, standardised by p(z_i|z_i+1), too
        residuals = [z3]
        for level, (below, above) in enumerate(((z1, z2), (z2, z3))):
            mean, log_var = _params(hierarchy.top_down[level], above)
            residuals.append((below - mean) * torch.exp(-0.5 * log_var))
    for r in residuals:
        torch.testing.assert_close(
            r.mean(0), torch.zeros(r.shape[1], dtype=r.dtype), atol=0.02, rtol=0
        )
        torch.testing.assert_close(
            r.var(0), torch.ones(r.shape[1], dtype=r.dtype), atol=0.03, rtol=0
        )
    with torch.no_grad():
        half = hierarchy.sample_prior(
            100_000, temperature=0.5, generator=torch.Generator().manual_seed(0)
        )
    assert float(half[:, -2:].std()) == pytest.approx(0.5, abs=0.01)


# -------------------------------------------------------------- in the model
def test_one_group_is_the_model_of_before_latent_groups_bit_for_bit(hydra_conf) -> None:
    from vaelab.models import VAE

    new = _model("latent=gaussian")
    hp = {k: v for k, v in new.hparams.items() if k != "latent"}
    torch.manual_seed(0)
    old = VAE(**hp)  # as a checkpoint written before latent= loads
    assert [n for n, _ in new.named_parameters()] == [n for n, _ in old.named_parameters()]
    old.load_state_dict(new.state_dict())
    x = example_batch((1, 8, 8), None, n=16)
    noise = torch.randn(16, new.latent_dim)
    (out_new, means_new), (out_old, _) = (m.compute_objective(x, noise=noise) for m in (new, old))
    assert torch.equal(out_new.loss, out_old.loss)
    assert set(means_new) == {"recon", "kl"}  # no group keys for one group
    assert new.code_dim == new.latent_dim and new.kl_estimate == "analytic"


@pytest.mark.parametrize("latent", ["hierarchical", "ladder"])
def test_the_iwae_bounds_of_a_hierarchy_are_its_log_weights(latent: str, hydra_conf) -> None:
    """The objective's −L_k and the test stage's −L_k equal log weights written out
    from the parts: log p(x|z1) + log p(z) − log q(z|x) of the chain's draws."""
    from vaelab.metrics.likelihood import iwae_nll
    from vaelab.objectives.iwae import iwae_bound

    model = _model(f"latent={latent}", "latent.groups=[3]")
    x = example_batch((1, 8, 8), None, n=3)
    torch.manual_seed(0)
    batch = model.latent_batch(x)
    assert batch.kl_groups is not None and set(batch.kl_groups) == {"z1", "z2"}
    torch.testing.assert_close(batch.kl, batch.kl_groups["z1"] + batch.kl_groups["z2"])
    h = model._encoder_forward(x)
    torch.manual_seed(1)
    bound = iwae_bound(batch, k=6)
    torch.manual_seed(1)
    eps = torch.randn(5, 3, model.code_dim)
    chains = [model.hierarchy.chain(e, h) for e in eps]
    z = torch.cat([batch.z[None], torch.stack([c.z for c in chains])])
    log_q = torch.cat([batch.log_qz_x[None], torch.stack([c.log_q for c in chains])])
    log_p = torch.stack([model.hierarchy.log_prior(zs) for zs in z])
    decoded = [model.likelihood(model.decoder(zs[:, : model.latent_dim])) for zs in z]
    log_px = torch.stack([d.log_prob(x) for d in decoded])
    log_w = log_px + log_p - log_q
    torch.testing.assert_close(bound, math.log(6) - torch.logsumexp(log_w, 0))

    # the test stage's bound from given noise, against the same by hand
    noise = torch.randn(3, 4, model.code_dim)
    zeros = torch.zeros(3, model.code_dim)
    flow, log_prior = model._iwae_densities(h)
    nll = iwae_nll(
        x,
        _normal(zeros, zeros),
        model.decode,
        4,
        noise=lambda n: noise,
        flow=flow,
        log_prior=log_prior,
    )
    by_hand = []
    for s in range(4):
        c = model.hierarchy.chain(noise[:, s], h)
        by_hand.append(model._log_likelihood(c.z, x) + c.log_p - c.log_q)
    torch.testing.assert_close(nll, math.log(4) - torch.logsumexp(torch.stack(by_hand), 0))


NEEDS_ONE_GROUP = ("beta_tcvae", "dip_vae_i", "dip_vae_ii", "factor_vae")


@pytest.mark.parametrize(
    ("latent", "objective"), list(itertools.product(("hierarchical", "ladder"), NEEDS_ONE_GROUP))
)
def test_objectives_defined_on_one_latent_vector_refuse_a_hierarchy(
    latent: str, objective: str, hydra_conf
) -> None:
    with pytest.raises(Exception) as caught:
        _model(f"latent={latent}", f"objective={objective}")
    error = find_user_error(caught.value)
    assert isinstance(error, ConfigError)
    assert "latent=gaussian" in str(error) and "\n" not in str(error)


@pytest.mark.parametrize("other", ["prior=vamp", "prior=mog", "posterior=iaf", "posterior=planar"])
def test_a_hierarchy_refuses_another_prior_or_posterior(other: str, hydra_conf) -> None:
    with pytest.raises(Exception) as caught:
        _model("latent=ladder", other)
    error = find_user_error(caught.value)
    assert isinstance(error, ConfigError)
    assert "prior=normal posterior=gaussian" in str(error) and "\n" not in str(error)


def test_continuing_a_checkpoint_needs_its_latent_structure(hydra_conf) -> None:
    from vaelab.runs.checkpoints import check_same_model

    default = _model()
    old = {k: v for k, v in default.hparams.items() if k != "latent"}
    check_same_model({"hyper_parameters": old}, default.hparams)  # older: one group
    ladder = _model("latent=ladder")
    with pytest.raises(CheckpointError) as refused:
        check_same_model({"hyper_parameters": dict(ladder.hparams)}, default.hparams)
    assert "latent=" in str(refused.value) and "\n" not in str(refused.value)


# ------------------------------------------------------------ from conf/, all of it
LATENT_OBJECTIVES = list(itertools.product(config_options("latent"), config_options("objective")))


def test_the_latent_structures_come_from_conf() -> None:
    assert {"gaussian", "hierarchical", "ladder", "vq"} <= set(config_options("latent"))
    assert len(LATENT_OBJECTIVES) >= 4 * 9


@pytest.mark.parametrize(("latent", "objective"), LATENT_OBJECTIVES)
def test_each_latent_structure_and_objective_trains_or_is_refused_in_one_line(
    latent: str, objective: str, hydra_conf
) -> None:
    # A small rate: two steps of the MLP preset's 5e-3 on 3x64x64 inputs move the first
    # layer's 12,288 weights far enough to overflow a variance two groups up.
    cfg = compose_train(
        f"latent={latent}", f"objective={objective}", "~model/scheduler", "model.optimizer.lr=1e-4"
    )
    # What the papers define (written out here): β-TCVAE, FactorVAE and DIP-VAE on one
    # latent vector; the VQ-VAE's loss and its quantised latents only with each other.
    one_vector = latent in ("hierarchical", "ladder") and objective in NEEDS_ONE_GROUP
    vq_pairing = (latent == "vq") != (objective == "vq")
    for dims, levels in data_shapes():
        vae = model_for_shape(cfg, dims, levels)
        if isinstance(vae, ConfigError):
            assert one_vector or vq_pairing, vae
            assert ("latent=vq" if vq_pairing else "latent=gaussian") in str(vae) or (
                "objective=vq" in str(vae)
            )
            continue
        assert not (one_vector or vq_pairing), (latent, objective)
        vae.objective.set_dataset_size(1000)
        optimizers = vae.configure_optimizers()
        before = [p.detach().clone() for p in vae.parameters()]
        for step in (10, 11):
            for optimizer in optimizers:
                optimizer.zero_grad()
            out, means = vae.compute_objective(example_batch(dims, levels), step=step)
            (out.loss if out.own_loss is None else out.loss + out.own_loss).backward()
            for optimizer in optimizers:
                optimizer.step()
        where = (latent, objective, shape_id((dims, levels)))
        assert torch.isfinite(out.loss) and torch.isfinite(means["kl"]), where
        moved = [not torch.equal(a, b) for a, b in zip(before, vae.parameters(), strict=True)]
        assert all(moved), where  # every group's networks, both ways; through the codes
        groups = {k for k in means if k.startswith("kl/")}
        if latent in ("gaussian", "vq"):
            assert not groups, where
        else:
            assert groups == {"kl/z1", "kl/z2"}, where
            torch.testing.assert_close(means["kl"], means["kl/z1"] + means["kl/z2"])


# ------------------------------------------------------------- through the apps
def test_a_ladder_run_logs_exactly_the_keys_it_declares_group_by_group(tmp_path: Path) -> None:
    model, logged = smoke_run("latent=ladder", tmp_path)
    declared = set(model.metric_keys())
    assert logged == declared, (sorted(logged - declared), sorted(declared - logged))
    assert {"train/kl/z1", "val/kl/z2", "test/kl/z1", "test/active_units/z2"} <= declared
    assert not any("kl_dim" in key for key in declared)
    summary = json.loads((tmp_path / "run" / "metrics.json").read_text())
    metrics = summary["metrics"]
    assert metrics["test/kl"] == pytest.approx(
        metrics["test/kl/z1"] + metrics["test/kl/z2"], rel=1e-5
    )
    assert (
        metrics["test/active_units"]
        == metrics["test/active_units/z1"] + metrics["test/active_units/z2"]
    )
    assert summary["latent"]["structure"] == "LadderHierarchy"
    assert summary["latent"]["groups"] == {"z1": 10, "z2": 8}


HIERARCHY_RESUMABLE = [
    "debug=smoke",
    "logger=csv",
    "data.resolution=32",
    "latent=hierarchical",
    "trainer.max_epochs=3",
    "trainer.limit_train_batches=40",
    "trainer.deterministic=true",
    "seed=5",
]


def test_a_hierarchy_resumes_after_kill_9_bit_identically(tmp_path: Path) -> None:
    want, got = killed_and_resumed(tmp_path, *HIERARCHY_RESUMABLE)
    assert got["global_step"] == want["global_step"] == 120
    assert any(k.startswith("latents.bottom_up.") for k in want["state_dict"])
    for key, value in want["state_dict"].items():
        assert torch.equal(got["state_dict"][key], value), key
    runs = (tmp_path / "reference", tmp_path / "killed")
    metrics = [json.loads((r / "metrics.json").read_text())["metrics"] for r in runs]
    assert metrics[1]["test/nelbo"] == metrics[0]["test/nelbo"]
    assert metrics[1]["test/kl/z2"] == metrics[0]["test/kl/z2"]


def test_a_sweep_over_latent_structures_is_compared_group_by_group(tmp_path: Path) -> None:
    from vaelab.compare import compare

    sweep = call_sweep(
        tmp_path,
        "latent=gaussian,hierarchical,ladder",
        "debug=smoke",
        "logger=csv",
        "data.resolution=32",
        env={"WANDB_MODE": "disabled"},
    )
    folders = sorted(p.name for p in sweep.iterdir() if (p / "metrics.json").exists())
    assert folders == ["0_latent=gaussian", "1_latent=hierarchical", "2_latent=ladder"]
    compared = compare([sweep], plots=False, save_csv=False)
    assert compared.swept == ["latent"]
    assert sorted(run.params["latent"] for run in compared.runs) == sorted(
        ["gaussian", "hierarchical", "ladder"]
    )
    for run in compared.runs:
        grouped = {k for k, v in run.metrics.items() if k.startswith("test/kl/") and v is not None}
        assert grouped == (
            set() if run.params["latent"] == "gaussian" else {"test/kl/z1", "test/kl/z2"}
        )


@pytest.mark.parametrize("kind", [BottomUpHierarchy, LadderHierarchy])
def test_every_log_variance_of_a_hierarchy_stays_within_its_bound(kind: type[Hierarchy]) -> None:
    """Weights far too large for the data: every posterior and prior log-variance is
    still within ±LOG_VAR_BOUND, so the densities stay finite."""
    hierarchy = kind(**SIZES).double()
    randomise(hierarchy, 30.0)
    h, eps = torch.randn(4, 6, dtype=torch.float64), torch.randn(4, 7, dtype=torch.float64)
    with torch.no_grad():
        chain = hierarchy.chain(eps, h)
        above = chain.z.split([3, 2, 2], -1)[1:]
        priors = [hierarchy.prior_params(z, level)[1] for level, z in enumerate(above)]
    for log_var in priors:
        assert log_var.abs().max() <= LOG_VAR_BOUND
    # a ladder's posterior merges two bounded precisions: at most twice the larger one
    assert chain.log_var.max() <= LOG_VAR_BOUND
    assert chain.log_var.min() >= -LOG_VAR_BOUND - math.log(2) - 1e-9
    assert torch.isfinite(chain.log_q).all() and torch.isfinite(chain.log_p).all()
