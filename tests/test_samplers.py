"""Latent samplers (`sampler=`), their saved fits, and sample quality (FID, KID): each
checked against data of a known law, numpy's and scipy's own computations, and the
files they write."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

from vaelab.errors import DataError
from vaelab.metrics.fid import (
    INCEPTION_FILE,
    INCEPTION_SHA256_PREFIX,
    check_inception_weights,
    inception_features,
    sample_quality,
)
from vaelab.samplers import FlowSampler, GaussianMixtureSampler, PriorSampler, TwoStageSampler
from vaelab.samplers.store import load_or_fit, sampler_path


def correlated_gaussian(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """n draws of a 3-d Gaussian with a known mean and covariance."""
    generator = torch.Generator().manual_seed(seed)
    mean = torch.tensor([1.0, -2.0, 0.5])
    factor = torch.tensor([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [-0.3, 0.2, 0.5]])
    return mean + torch.randn(n, 3, generator=generator) @ factor.T, mean, factor @ factor.T


def two_clusters(n: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    centres = torch.tensor([[-3.0, 0.0], [3.0, 1.0]])
    which = torch.rand(n, generator=generator) < 0.3
    return centres[which.long()] + 0.5 * torch.randn(n, 2, generator=generator)


def test_the_gmm_sampler_recovers_a_known_mixture() -> None:
    data = two_clusters(4000)
    sampler = GaussianMixtureSampler(components=2, n_fit=4000)
    sampler.fit(data)
    draws = sampler.sample(None, 20000, generator=torch.Generator().manual_seed(0))
    share_right = float((draws[:, 0] > 0).float().mean())
    assert share_right == pytest.approx(0.3, abs=0.02)
    right = draws[draws[:, 0] > 0]
    torch.testing.assert_close(right.mean(0), torch.tensor([3.0, 1.0]), atol=0.05, rtol=0)
    torch.testing.assert_close(right.std(0), torch.tensor([0.5, 0.5]), atol=0.05, rtol=0)
    # temperature scales the components' noise, not where they are
    cold = sampler.sample(None, 200, 0.0, torch.Generator().manual_seed(0))
    distances = torch.cdist(cold, sampler.state()["means"]).min(1).values
    assert float(distances.max()) < 1e-6


@pytest.mark.parametrize("kind", ["maf", "two_stage"])
def test_the_flow_and_two_stage_samplers_learn_a_correlated_gaussian(kind: str) -> None:
    data, mean, covariance = correlated_gaussian(5000)
    torch.manual_seed(0)
    sampler = (
        FlowSampler(layers=2, hidden=[32, 32], steps=1500, lr=3e-3)
        if kind == "maf"
        else TwoStageSampler(hidden=64, steps=1500, lr=3e-3)
    )
    sampler.fit(data)
    draws = sampler.sample(None, 20000, generator=torch.Generator().manual_seed(0)).detach()
    torch.testing.assert_close(draws.mean(0), mean, atol=0.15, rtol=0)
    torch.testing.assert_close(torch.cov(draws.T), covariance, atol=0.2, rtol=0)


@pytest.mark.parametrize(
    "make",
    [
        lambda: GaussianMixtureSampler(components=2, n_fit=500),
        lambda: FlowSampler(layers=1, hidden=[8], steps=20, n_fit=500),
        lambda: TwoStageSampler(hidden=8, steps=20, n_fit=500),
    ],
)
def test_a_saved_fit_draws_what_the_fitted_sampler_drew(make, tmp_path: Path) -> None:
    data, _, _ = correlated_gaussian(500)
    model = nn.Linear(2, 2)
    checkpoint = tmp_path / "checkpoints" / "best.ckpt"
    fitted, how = load_or_fit(make(), model, checkpoint, lambda s: data)
    assert how == "fitted"
    restored, how = load_or_fit(make(), model, checkpoint, lambda s: pytest.fail("refitted"))
    assert how == "reused"
    a = fitted.sample(None, 50, generator=torch.Generator().manual_seed(3))
    b = restored.sample(None, 50, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b)


def test_a_saved_fit_is_refitted_for_other_weights_other_settings_or_a_damaged_file(
    tmp_path: Path, caplog
) -> None:
    data = two_clusters(300)
    model = nn.Linear(2, 2)
    checkpoint = tmp_path / "checkpoints" / "last.ckpt"
    fits = []

    def latents(sampler):
        fits.append(sampler)
        return data

    load_or_fit(GaussianMixtureSampler(components=2), model, checkpoint, latents)
    path = sampler_path(checkpoint, GaussianMixtureSampler())
    assert path == tmp_path / "checkpoints" / "samplers" / "last-gmm.pt"
    assert (
        load_or_fit(GaussianMixtureSampler(components=2), model, checkpoint, latents)[1] == "reused"
    )
    assert (
        load_or_fit(GaussianMixtureSampler(components=3), model, checkpoint, latents)[1] == "fitted"
    )
    with torch.no_grad():
        model.weight.add_(1.0)  # another checkpoint's weights
    assert (
        load_or_fit(GaussianMixtureSampler(components=3), model, checkpoint, latents)[1] == "fitted"
    )
    # one byte of a tensor changed: the checksum catches it, the file is fitted again
    saved = torch.load(path, weights_only=True)
    saved["state"]["means"][0, 0] += 1.0
    torch.save(saved, path)
    with caplog.at_level(logging.WARNING):
        assert (
            load_or_fit(GaussianMixtureSampler(components=3), model, checkpoint, latents)[1]
            == "fitted"
        )
    assert "does not match its checksum" in caplog.text
    path.write_bytes(b"not a torch file")
    assert (
        load_or_fit(GaussianMixtureSampler(components=3), model, checkpoint, latents)[1] == "fitted"
    )
    assert len(fits) == 5


def test_the_prior_sampler_draws_the_model_prior() -> None:
    from vaelab.models.priors import StandardNormal

    class Model:
        prior = StandardNormal(4)

    draws = PriorSampler().sample(Model(), 6, 0.5, torch.Generator().manual_seed(2))
    torch.testing.assert_close(
        draws, torch.randn(6, 4, generator=torch.Generator().manual_seed(2)) * 0.5
    )


# ------------------------------------------------------------------- FID and KID
class Flatten(nn.Module):
    """A stand-in feature extractor: the pixels themselves."""

    num_features = 4

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.flatten(1)


def gaussian_images(n: int, scale: float, shift: float, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 2, 2, generator=generator) * scale + shift


def test_fid_is_the_frechet_distance_of_the_feature_gaussians_scipy_computes() -> None:
    real, fake = gaussian_images(3000, 1.0, 0.0, 0), gaussian_images(2000, 1.5, 0.3, 1)
    result = sample_quality([real[:1000], real[1000:]], [fake], Flatten(), kid_subset_size=500)
    a, b = real.flatten(1).double().numpy(), fake.flatten(1).double().numpy()
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    expected = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(
        ca + cb - 2 * scipy.linalg.sqrtm(ca @ cb).real
    )
    assert result["fid"] == pytest.approx(expected, rel=1e-6)
    assert (result["n_real"], result["n_generated"], result["kid_subset_size"]) == (3000, 2000, 500)


def test_kid_is_the_unbiased_polynomial_mmd_numpy_computes() -> None:
    real, fake = gaussian_images(1500, 1.0, 0.0, 2), gaussian_images(1500, 1.2, 0.2, 3)
    result = sample_quality([real], [fake], Flatten(), kid_subset_size=1500)

    def kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return (x @ y.T / x.shape[1] + 1.0) ** 3

    x, y = real.flatten(1).double().numpy(), fake.flatten(1).double().numpy()
    m = len(x)
    kxx, kyy, kxy = kernel(x, x), kernel(y, y), kernel(x, y)
    expected = (
        (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
        + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        - 2 * kxy.mean()
    )
    # subsets of the whole set, drawn without replacement: every subset is the set itself
    assert result["kid_mean"] == pytest.approx(expected, rel=1e-6)
    assert result["kid_std"] == pytest.approx(0.0, abs=1e-9)


def test_missing_or_wrong_inception_weights_are_one_line_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(DataError) as missing:
        inception_features(tmp_path)
    message = str(missing.value)
    assert INCEPTION_FILE in message and INCEPTION_SHA256_PREFIX in message
    assert str(tmp_path / "inception" / INCEPTION_FILE) in message and "\n" not in message
    wrong = tmp_path / "inception" / INCEPTION_FILE
    wrong.parent.mkdir()
    wrong.write_bytes(b"some other file")
    with pytest.raises(DataError, match="checksum differs"):
        check_inception_weights(wrong)
