"""What the test stage adds to the ELBO terms: the IWAE bound, latent health and the
latent statistics `vaelab.eval` writes to eval.json.

One module with running states (torchmetrics sums and counts, exact across DDP ranks)
that the VAE's test hooks update per batch and compute once per epoch:

- `nll_iwae`: −L_k with `iwae_k` importance samples per example (Burda et al. 2016),
  from per-example noise streams, so the number does not depend on batch size, DDP
  ranks or the global RNG; at k = 1 it is the batch's −ELBO itself.
- `bpd_iwae`: the same bound in bits per dimension, when the ELBO's bpd is reported.
- `active_units`: dimensions whose posterior mean varies over the data by more than
  Burda et al.'s 0.01; under a hierarchy of latent groups also `active_units/<group>`.
- `kl_dim/<d>`: KL per latent dimension, where the KL is analytic per dimension (a
  Gaussian posterior under N(0, I)); a learned prior or a flow posterior has none.

Metric states are not saved in checkpoints, so a checkpoint loads with or without it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeAlias

import torch
from torch import Tensor, nn
from torch.distributions import Distribution, Independent, Normal
from torchmetrics import MeanMetric, Metric
from typing_extensions import override

from vaelab.metrics.latents import active_units, variance_from_moments
from vaelab.metrics.likelihood import bits_per_dim, iwae_nll
from vaelab.models.noise import per_example_noise

#: The noise stream seed of the importance samples, apart from the ELBO's seed 0.
IWAE_NOISE_SEED = 1

#: A flow posterior's map z0 -> (z, log|det|) and the prior's log-density, for the IWAE
#: bound of a model whose latents are not a Gaussian under N(0, I).
Densities: TypeAlias = tuple[Callable[[Tensor], tuple[Tensor, Tensor]], Callable[[Tensor], Tensor]]


class VectorMean(Metric):
    """Mean over examples of a (B, D) tensor, per column; exact under DDP (sum, count)."""

    full_state_update = False
    #: metric states, registered by `add_state`
    total: Tensor
    count: Tensor

    def __init__(self, size: int) -> None:
        super().__init__()
        self.add_state(
            "total", default=torch.zeros(size, dtype=torch.float64), dist_reduce_fx="sum"
        )
        self.add_state("count", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    @override
    def update(self, values: Tensor) -> None:
        self.total += values.detach().double().sum(0)
        self.count += values.shape[0]

    @override
    def compute(self) -> Tensor:
        return (self.total / self.count.clamp_min(1)).float()


def kl_dim_values(prefix: str, kl_per_dim: Tensor) -> dict[str, float]:
    """`<prefix>/kl_dim/<d>` for each dimension, zero-padded so that the keys sort."""
    width = len(str(len(kl_per_dim) - 1))
    return {f"{prefix}/kl_dim/{i:0{width}d}": float(v) for i, v in enumerate(kl_per_dim)}


class TestStageMetrics(nn.Module):
    """The test stage's extras for a VAE with `latent_dim` latents.

    Args:
        latent_dim: size of z.
        iwae_k: importance samples per example for `nll_iwae` (1: the ELBO itself).
        max_decoded: latents decoded per pass of the IWAE bound: bounds its memory
            whatever k is (see `vaelab.metrics.likelihood.iwae_nll`).
        per_dim_kl: the model's KL is analytic per dimension (`kl_dim/<d>` is reported).
        groups: the latent groups' sizes by name, in the order they are concatenated,
            for a model with several (`active_units/<group>` is reported).
    """

    __test__ = False  # a class named Test*, not a pytest test

    def __init__(
        self,
        latent_dim: int,
        iwae_k: int = 1,
        max_decoded: int = 4096,
        per_dim_kl: bool = True,
        groups: dict[str, int] | None = None,
    ) -> None:
        super().__init__()
        if iwae_k < 1 or max_decoded < 1:
            raise ValueError(f"iwae_k and max_decoded must be >= 1, got {iwae_k}, {max_decoded}")
        self.latent_dim = latent_dim
        self.iwae_k = int(iwae_k)
        self.max_decoded = int(max_decoded)
        self.per_dim_kl = per_dim_kl
        self.groups = dict(groups or {})
        self.nll_iwae = MeanMetric()
        self.kl_per_dim = VectorMean(latent_dim)
        self.mean_moments = VectorMean(2 * latent_dim)  # E[mu], E[mu^2]
        #: after `compute`: KL per dimension and the variance of the posterior mean,
        #: reduced over every rank (what eval.json records).
        self.latent_stats: dict[str, Tensor] = {}

    def update(
        self,
        x: Tensor,
        index: Tensor,
        mean: Tensor,
        log_var: Tensor,
        nelbo: Tensor,
        kl_per_dim: Tensor | None,
        decode: Callable[[Tensor], Distribution],
        densities: Densities | None = None,
        code: Tensor | None = None,
    ) -> None:
        """One test batch: data `x` with dataset indices `index`, the encoder's Gaussian,
        the batch's per-example −ELBO and KL per dimension (None if it has none), the
        decoder, and for a flow posterior or a learned prior their `Densities`. `code`:
        the posterior means active units are counted on, where they are not `mean`
        (a hierarchy's `mean` is its N(0, I) noise base)."""
        mean, log_var = mean.detach(), log_var.detach()
        if kl_per_dim is not None:
            self.kl_per_dim.update(kl_per_dim)
        code = mean if code is None else code.detach()
        self.mean_moments.update(torch.cat([code, code * code], dim=1))
        if self.iwae_k == 1:
            # L_1 is the ELBO: the same estimate as test/nelbo (analytic KL, the same
            # posterior draw), so that k = 1 reproduces it exactly.
            self.nll_iwae.update(nelbo)
            return
        posterior = Independent(Normal(mean, torch.exp(0.5 * log_var), validate_args=False), 1)
        nll = iwae_nll(
            x,
            posterior,
            decode,
            self.iwae_k,
            max_decoded=self.max_decoded,
            noise=per_example_noise(index, self.latent_dim, seed=IWAE_NOISE_SEED),
            flow=densities[0] if densities else None,
            log_prior=densities[1] if densities else None,
        )
        self.nll_iwae.update(nll)

    @staticmethod
    def keys(
        latent_dim: int,
        with_bpd: bool,
        per_dim_kl: bool = True,
        groups: dict[str, int] | None = None,
    ) -> set[str]:
        """The keys `compute` returns (tests/test_metric_names.py checks they match)."""
        names = {"test/nll_iwae", "test/iwae_k", "test/active_units"}
        names |= {f"test/active_units/{g}" for g in groups or {}}
        if per_dim_kl:
            names |= set(kl_dim_values("test", torch.zeros(latent_dim)))
        return names | ({"test/bpd_iwae"} if with_bpd else set())

    def compute(self, data_shape: Sequence[int], with_bpd: bool) -> dict[str, float]:
        """The epoch's `test/*` extras, then reset for the next test run; `with_bpd`:
        also `bpd_iwae` (the likelihood is discrete over the data's levels)."""
        kl_per_dim = self.kl_per_dim.compute() if self.per_dim_kl else None
        moments = self.mean_moments.compute()
        nll_iwae = float(self.nll_iwae.compute())
        for metric in (self.kl_per_dim, self.mean_moments, self.nll_iwae):
            metric.reset()
        d = self.latent_dim
        variance = variance_from_moments(moments[:d], moments[d:])
        values = {
            "test/nll_iwae": nll_iwae,
            "test/iwae_k": float(self.iwae_k),
            "test/active_units": float(active_units(variance)),
        }
        if self.groups:
            parts = torch.split(variance, list(self.groups.values()))
            for name, part in zip(self.groups, parts, strict=True):
                values[f"test/active_units/{name}"] = float(active_units(part))
        if kl_per_dim is not None:
            values.update(kl_dim_values("test", kl_per_dim))
        if with_bpd:
            values["test/bpd_iwae"] = float(bits_per_dim(nll_iwae, data_shape))
        self.latent_stats = {"mean_variance": variance.cpu()}
        if kl_per_dim is not None:
            self.latent_stats["kl_per_dim"] = kl_per_dim.cpu()
        return values
