"""Discrete latents (`latent=vq`, `objective=vq`, `sampler=code_prior`): the quantiser
against brute-force nearest neighbours and moving averages written out in numpy, the
straight-through gradient, the objective's loss by hand, the code prior's causality
and likelihood, the pair's bound from eval.py; and a VQ-VAE through the apps: logged
keys, kill -9 and resume bit for bit, generate and eval with the learned prior."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import compose_train
from in_process import call_app, call_train, killed_and_resumed
from test_combinations import example_batch
from test_metric_names import smoke_run
from test_priors_posteriors import _model as digits_model

from vaelab.errors import ConfigError, find_user_error
from vaelab.models.quantise import VectorQuantiser
from vaelab.samplers.code_prior import CausalCodeModel, CodePriorSampler


def _quantiser(**settings) -> VectorQuantiser:
    torch.manual_seed(0)
    return VectorQuantiser(latent_dim=6, features=5, codes=7, embedding_dim=2, **settings)


def test_each_vector_goes_to_its_nearest_code_and_the_gradient_passes_straight() -> None:
    quantiser = _quantiser()
    h = torch.randn(4, 5, requires_grad=True)
    out = quantiser.quantise(h)
    z_e = quantiser.head(h).view(4, 3, 2)
    expected = torch.cdist(z_e.reshape(-1, 2), quantiser.codebook).argmin(1).view(4, 3)
    assert torch.equal(out.indices, expected)
    torch.testing.assert_close(out.z_q, quantiser.codebook[expected].reshape(4, 6))
    torch.testing.assert_close(
        out.commitment,
        (z_e.reshape(4, 6) - quantiser.codebook[expected].reshape(4, 6)).square().sum(1),
    )
    # straight-through: d(w · z_q)/d z_e is w
    weights = torch.randn(4, 6)
    (grad,) = torch.autograd.grad((out.z_q * weights).sum(), out.z_e)
    torch.testing.assert_close(grad, weights)
    counts = np.bincount(expected.flatten().numpy(), minlength=7) / 12
    entropy = -sum(p * math.log(p) for p in counts if p > 0)
    assert float(out.perplexity) == pytest.approx(math.exp(entropy), rel=1e-5)
    assert float(out.codes_used) == pytest.approx((counts > 0).mean())


def test_the_codebook_moves_by_moving_averages_and_dead_codes_restart() -> None:
    quantiser = _quantiser(decay=0.9, restart_below=0.5)
    quantiser.started.fill_(True)  # past the first batch's start on encoder outputs
    count = quantiser.ema_count.clone().numpy()
    count[[5, 6]] = 0.1  # two codes about to die
    quantiser.ema_count.copy_(torch.from_numpy(count))
    total_sum = quantiser.ema_sum.clone().numpy()
    vectors = torch.randn(40, 2)
    indices = quantiser.nearest(vectors)
    restarted = int(quantiser._update(vectors, indices))
    # numpy: counts and sums decayed by 0.9 plus 0.1 x this batch's
    one_hot = np.eye(7)[indices.numpy()]
    count = 0.9 * count + 0.1 * one_hot.sum(0)
    total_sum = 0.9 * total_sum + 0.1 * one_hot.T @ vectors.numpy()
    n = count.sum()
    smoothed = (count + 1e-5) / (n + 7e-5) * n
    expected = total_sum / smoothed[:, None]
    dead = count < 0.5
    assert restarted == dead.sum() >= 1
    alive = ~dead
    np.testing.assert_allclose(
        quantiser.codebook.numpy()[alive], expected[alive], rtol=1e-5, atol=1e-6
    )
    for code in np.flatnonzero(dead):  # moved onto one of the batch's vectors
        assert any(torch.equal(quantiser.codebook[code], v) for v in vectors)
        assert float(quantiser.ema_count[code]) == 1.0


def _rank_update(rank: int, world: int, rendezvous: str, folder: str) -> None:
    """One rank of a gloo process group: its share of the batch, one moving-average step."""
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=world
    )
    try:
        quantiser = _quantiser(decay=0.9, restart_below=0.0)
        quantiser.started.fill_(True)
        vectors = torch.load(f"{folder}/vectors.pt")
        share = vectors[rank::world]
        quantiser._update(share, quantiser.nearest(share))
        torch.save(quantiser.state_dict(), f"{folder}/rank{rank}.pt")
    finally:
        torch.distributed.destroy_process_group()


def test_under_ddp_every_rank_moves_its_codebook_by_the_whole_batch(tmp_path: Path) -> None:
    """Two ranks (a gloo process group, as a DDP job has), each with half the batch: each
    ends with the codebook one process gets from the whole batch."""
    import torch.multiprocessing as multiprocessing

    vectors = torch.randn(40, 2, generator=torch.Generator().manual_seed(2))
    torch.save(vectors, tmp_path / "vectors.pt")
    multiprocessing.spawn(
        _rank_update, args=(2, str(tmp_path / "rendezvous"), str(tmp_path)), nprocs=2
    )
    alone = _quantiser(decay=0.9, restart_below=0.0)
    alone.started.fill_(True)
    alone._update(vectors, alone.nearest(vectors))
    for rank in range(2):
        state = torch.load(tmp_path / f"rank{rank}.pt")
        for key in ("codebook", "ema_count", "ema_sum"):
            torch.testing.assert_close(state[key], getattr(alone, key), msg=f"{key} {rank}")


def test_the_first_training_batch_starts_the_codebook_on_encoder_outputs() -> None:
    quantiser = _quantiser()
    quantiser.train()
    h = torch.randn(50, 5)
    quantiser(h)
    vectors = quantiser.head(h).detach().view(-1, 2)
    before_average = quantiser.ema_sum / quantiser.ema_count.clamp_min(1e-9).unsqueeze(1)
    assert bool(quantiser.started)
    assert torch.isfinite(before_average).all()
    # every code lies within the encoder outputs' range (it started on one of them)
    assert (quantiser.codebook.min(0).values >= vectors.min(0).values - 1e-5).all()
    assert (quantiser.codebook.max(0).values <= vectors.max(0).values + 1e-5).all()
    quantiser.eval()
    codebook = quantiser.codebook.clone()
    quantiser(h)  # evaluation leaves the codebook alone
    assert torch.equal(quantiser.codebook, codebook)


# -------------------------------------------------------------- in the model
def _model(*overrides: str):
    """A VQ-VAE for 8 x 8 digits."""
    return digits_model("latent=vq", "objective=vq", *overrides)


def test_the_vq_loss_is_reconstruction_plus_beta_commitment_and_the_kl_is_log_k(hydra_conf) -> None:
    model = _model("objective.beta=0.4", "latent.codes=16", "latent_dim=10")
    model.eval()
    x = example_batch((1, 8, 8), None, n=5)
    out, means = model.compute_objective(x)
    h = model._encoder_forward(x)
    quantised = model.quantiser.quantise(h)
    log_px = model.likelihood(model.decoder(quantised.z_q)).log_prob(x)
    torch.testing.assert_close(out.loss, -log_px.mean() + 0.4 * quantised.commitment.mean())
    assert float(means["kl"]) == pytest.approx(5 * math.log(16))  # 10 / 2 positions
    assert model.kl_estimate == "constant"
    # a point-mass posterior: the test stage's IWAE bound is the ELBO at any k
    model.configure_evaluation(iwae_k=50)
    assert model.test_extras.iwae_k == 1


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        (("latent=vq", "objective=beta_vae"), "objective=vq"),
        (("latent=vq", "objective=iwae"), "objective=vq"),
        (("objective=vq",), "latent=vq"),
        (("objective=vq", "latent=ladder"), "latent=vq"),
        (("latent=vq", "objective=vq", "prior=vamp"), "prior=normal"),
        (("latent=vq", "objective=vq", "latent_dim=7"), "latent_dim=6"),
    ],
)
def test_what_does_not_fit_a_vq_vae_is_refused_in_one_line(
    overrides: tuple[str, ...], says: str, hydra_conf
) -> None:
    from vaelab.config.build import build_model

    cfg = compose_train("data=digits", "~model/scheduler", *overrides)

    class Data:
        dims, levels = (1, 8, 8), None

    with pytest.raises(Exception) as caught:
        build_model(cfg, Data())
    error = find_user_error(caught.value)
    assert isinstance(error, ConfigError)
    assert says in str(error) and "\n" not in str(error)


# -------------------------------------------------------------- the code prior
def test_the_code_model_is_causal_and_its_likelihood_is_the_product_of_its_conditionals() -> None:
    torch.manual_seed(0)
    network = CausalCodeModel(positions=5, codes=6, width=16, layers=2, heads=2).eval()
    indices = torch.randint(6, (3, 5))
    logits = network.logits(indices)
    for i in range(5):  # changing the codes from position i on leaves logits[:, :i + 1]
        changed = indices.clone()
        changed[:, i:] = (changed[:, i:] + 1) % 6
        torch.testing.assert_close(network.logits(changed)[:, : i + 1], logits[:, : i + 1])
    by_hand = logits.log_softmax(-1).gather(2, indices.unsqueeze(2)).squeeze(2).sum(1)
    torch.testing.assert_close(network.log_prob(indices), by_hand)


def test_a_code_prior_learns_a_known_code_distribution() -> None:
    """Codes whose first index is uniform over 4 values and whose second repeats it:
    the entropy is log 4, and samples keep the repetition."""
    generator = torch.Generator().manual_seed(0)
    first = torch.randint(4, (4000,), generator=generator)
    codes = torch.stack([first, first], dim=1)
    sampler = CodePriorSampler(width=32, layers=1, heads=2, steps=400, lr=3e-3, seed=0)
    sampler._codes = 4
    sampler.fit(codes)
    nll = float(sampler.code_nll(codes).mean())
    assert nll == pytest.approx(math.log(4), abs=0.08)

    class Model:  # what sampling reads of a model: its quantiser's lookup
        class quantiser:
            codebook = torch.arange(4.0).unsqueeze(1)

            @staticmethod
            def lookup(indices: torch.Tensor) -> torch.Tensor:
                return indices.float()

    z = sampler.sample(Model(), 500, generator=torch.Generator().manual_seed(1))
    assert (z[:, 0] == z[:, 1]).float().mean() > 0.97
    assert set(z[:, 0].long().tolist()) == {0, 1, 2, 3}


def test_the_code_prior_refuses_a_model_without_codes(hydra_conf) -> None:
    from vaelab.config.build import build_model

    class Data:
        dims, levels = (1, 8, 8), None

    model = build_model(compose_train("data=digits", "~model/scheduler"), Data())
    with pytest.raises(ConfigError, match="latent=vq objective=vq"):
        CodePriorSampler().check_model(model)


# ------------------------------------------------------------- through the apps
VQ_RUN = ["latent=vq", "objective=vq", "latent.codes=32", "data.resolution=32"]


def test_a_vq_run_logs_exactly_the_keys_it_declares(tmp_path: Path) -> None:
    model, logged = smoke_run(VQ_RUN, tmp_path)
    declared = set(model.metric_keys())
    assert logged == declared, (sorted(logged - declared), sorted(declared - logged))
    assert {"train/perplexity", "train/commitment", "train/codes_used", "val/nelbo"} <= declared
    summary = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert summary["latent"]["kl"] == "constant" and summary["latent"]["posterior"] == "PointMass"
    kl = summary["metrics"]["test/kl"]
    assert kl == pytest.approx(5 * math.log(32), rel=1e-6)  # latent_dim 10 / 2, K = 32


RESUMABLE = [
    "debug=smoke",
    "logger=csv",
    *VQ_RUN,
    "trainer.max_epochs=3",
    "trainer.limit_train_batches=40",
    "trainer.deterministic=true",
    "latent.restart_below=0.3",  # restarts draw from the global RNG: resumed too
    "seed=5",
]


def test_a_vq_vae_resumes_after_kill_9_bit_identically(tmp_path: Path) -> None:
    want, got = killed_and_resumed(tmp_path, *RESUMABLE)
    assert got["global_step"] == want["global_step"] == 120
    for key in ("latents.codebook", "latents.ema_count", "latents.ema_sum"):
        assert key in want["state_dict"]
    for key, value in want["state_dict"].items():
        assert torch.equal(got["state_dict"][key], value), key
    with (tmp_path / "reference" / "csv" / "metrics.csv").open() as f:
        header = f.readline().strip().split(",")
    assert "train/code_restarts" in header


def test_generate_and_eval_fit_the_code_prior_once_and_report_the_pairs_bound(
    tmp_path: Path,
) -> None:
    run = tmp_path / "run"
    ok = call_train("debug=smoke", "logger=csv", *VQ_RUN, f"hydra.run.dir={run}")
    assert ok.returncode == 0, ok.stderr[-2000:]
    checkpoint = run / "checkpoints" / "best.ckpt"
    prior = ["sampler=code_prior", "sampler.steps=60", "sampler.n_fit=500"]
    generated = call_app("generate", f"ckpt_path={checkpoint}", *prior)
    assert generated.returncode == 0, generated.stderr[-2000:]
    assert (checkpoint.parent / "generated" / "samples_code_prior.png").is_file()
    report = tmp_path / "eval.json"
    evaluated = call_app(
        "eval",
        f"ckpt_path={checkpoint}",
        *prior,
        "eval.sample_quality.n_samples=64",
        "eval.disentanglement.enabled=false",
        f"eval.output={report}",
        f"hydra.run.dir={tmp_path / 'eval'}",
    )
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    results = json.loads(report.read_text())
    assert results["sample_quality"]["sampler_fit"] == "reused"  # fitted once, by generate
    metrics = results["metrics"]
    code_nll = results["sample_quality"]["code_nll"]
    assert metrics["nll_pair"] == pytest.approx(metrics["recon"] + code_nll, rel=1e-6)
    # the learned prior is no worse than the uniform one's log K per position
    assert code_nll <= metrics["kl"] + 1e-3
    # bits per dimension: the same code length per data value as the ELBO's
    assert metrics["bpd_pair"] / metrics["bpd"] == pytest.approx(
        metrics["nll_pair"] / metrics["nelbo"], rel=1e-5
    )
