"""Latent structures, chosen with `latent=` (conf/latent/): how many groups of Gaussian
latents a VAE has and how they depend on each other, whatever its backbones.

- `GaussianLatent` (`latent=gaussian`, the default): one group `z` of `latent_dim`
  Gaussians. The VAE's own path (its posterior head, `prior=`, `posterior=`) builds it;
  this class only names it.
- `BottomUpHierarchy` (`latent=hierarchical`; Burda et al. 2016, "Importance weighted
  autoencoders", the two-stochastic-layer models): inference climbs the groups,
  q(z1|x) q(z2|z1) ... q(zL|zL−1), and generation descends them, p(zL) p(zL−1|zL) ...
  p(z1|z2) p(x|z1).
- `LadderHierarchy` (`latent=ladder`; Sønderby et al. 2016, "Ladder variational
  autoencoders"): a deterministic bottom-up pass gives each group an estimate
  N(μ̂ᵢ, σ̂ᵢ²); inference then descends with the generative model, each posterior the
  precision-weighted merge of its estimate and the top-down prior p(zᵢ|zᵢ₊₁):
  σ_q⁻² = σ̂⁻² + σ_p⁻², μ_q = (μ̂ σ̂⁻² + μ_p σ_p⁻²) σ_q².

Groups are numbered from the data up: `z1` is the one the decoder reads (its size is
`latent_dim`, so the backbones keep their meaning), `groups` lists the sizes above it.
The top group's prior is N(0, I); every other prior is a Gaussian whose parameters an
MLP computes from the group above.

A hierarchy is a flow from standard normal noise. Every group is drawn as
zᵢ = μᵢ + σᵢ εᵢ with μᵢ, σᵢ functions of x and of groups drawn before it, so the map
ε -> z is triangular with Jacobian diagonal σ, and

    log q(z|x) = log N(ε; 0, I) − Σ log σ.

The VAE therefore treats the concatenated latent [z1, z2, ...] as a flow posterior over
N(0, I) noise (`HierarchyPosterior`) under a learned prior (`HierarchyPrior`): the IWAE
bound, its test-stage estimate and the prior's samples need nothing else.

The KL of each group is reported on its own (`kl/<group>`; they sum to `kl`): in closed
form where the posterior and the prior are Gaussians given the same draw (every group
of a ladder, the top group of a bottom-up hierarchy), and otherwise the single-sample
log q(zᵢ|·) − log p(zᵢ|zᵢ₊₁) of the batch's draw.
"""

from __future__ import annotations

import abc
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import Tensor, nn

from vaelab.config.constraints import PositiveInt, Widths
from vaelab.models.backbones._common import make_activation
from vaelab.models.flows import soft_clamp, standard_normal_log_density
from vaelab.models.posteriors import Posterior
from vaelab.models.priors import Prior
from vaelab.objectives.base import gaussian_log_density

#: Activations a hierarchy's MLPs take (torch.nn class names).
Activation = Literal["Tanh", "SiLU", "ReLU", "ELU", "GELU", "Softplus"]


class LatentStructure(nn.Module):
    """The base of the `latent=` options: `latent_dim` latents read by the decoder."""

    #: One group, built by the VAE itself (posterior head, prior=, posterior=).
    single_group: ClassVar[bool] = True

    def __init__(self, latent_dim: PositiveInt) -> None:
        super().__init__()
        self.latent_dim = int(latent_dim)

    @property
    def group_sizes(self) -> dict[str, int]:
        """Each group's name and size, from the data up."""
        return {"z": self.latent_dim}

    @property
    def code_dim(self) -> int:
        """Size of the concatenated latent [z1, z2, ...]."""
        return sum(self.group_sizes.values())


class GaussianLatent(LatentStructure):
    """One group of `latent_dim` Gaussian latents: the VAE of Kingma & Welling 2014."""


#: Every log-variance of a hierarchy is soft-clamped to ±LOG_VAR_BOUND (σ between 0.018
#: and 55): a bottom-up hierarchy's single-sample KL divides by the prior's variance, and
#: on Fashion-MNIST with the MLP preset's rate one seed's p(z1|z2) variance collapsed to
#: a NaN loss in the 6th epoch without it (bench/hierarchy.py).
LOG_VAR_BOUND = 8.0


def bounded(log_var: Tensor) -> Tensor:
    """A log-variance soft-clamped to ±LOG_VAR_BOUND (vaelab.models.flows.soft_clamp)."""
    return soft_clamp(log_var, LOG_VAR_BOUND)


def _gaussian_log_density(z: Tensor, mean: Tensor, log_var: Tensor) -> Tensor:
    """log N(z; mean, exp(log_var)), summed over the last dimension."""
    return gaussian_log_density(z, mean, log_var).sum(-1)


def _gaussian_kl(mean_q: Tensor, log_var_q: Tensor, mean_p: Tensor, log_var_p: Tensor) -> Tensor:
    """KL(N(mean_q, var_q) ‖ N(mean_p, var_p)), summed over the last dimension."""
    return 0.5 * (
        log_var_p
        - log_var_q
        + (torch.exp(log_var_q) + (mean_q - mean_p).square()) * torch.exp(-log_var_p)
        - 1.0
    ).sum(-1)


def _mlp(sizes: Sequence[int], activation: str) -> nn.Sequential:
    """Linear layers between `sizes`, the activation after each but the last."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(make_activation(activation))
    return nn.Sequential(*layers)


class _GaussianLayer(nn.Module):
    """An MLP from `n_in` features to the mean and log-variance of `n_out` Gaussians."""

    def __init__(self, n_in: int, hidden: Sequence[int], n_out: int, activation: str) -> None:
        super().__init__()
        self.net = _mlp([n_in, *hidden, 2 * n_out], activation)  # the last layer linear
        self.n_out = n_out

    def forward(self, h: Tensor) -> tuple[Tensor, Tensor]:
        out = self.net(h)
        return out[..., : self.n_out], bounded(out[..., self.n_out :])


@dataclass(frozen=True)
class Chain:
    """One draw through a hierarchy, per example (leading sample dimensions allowed).

    Attributes:
        z: the concatenated latent [z1, z2, ...] (..., code_dim).
        mean, log_var: each group's posterior parameters at this draw, concatenated.
        log_q, log_p: log q(z|x) and log p(z) of the draw (...).
        kl: each group's KL estimate (...), by name; they sum to the KL of the draw.
    """

    z: Tensor
    mean: Tensor
    log_var: Tensor
    log_q: Tensor
    log_p: Tensor
    kl: dict[str, Tensor]


class Hierarchy(LatentStructure, abc.ABC):
    """Groups of Gaussian latents above the decoder's `latent_dim` (see the module
    docstring). Subclasses define the inference path (`chain`).

    Args:
        latent_dim: size of z1, the group the decoder reads.
        features: the encoder backbone's output size (the VAE passes it).
        groups: sizes of the groups above z1, from the bottom up.
        hidden: widths of the MLPs between adjacent groups, both ways.
        activation: their activation (a torch.nn class name).
    """

    single_group = False

    def __init__(
        self,
        latent_dim: PositiveInt,
        features: PositiveInt,
        groups: Widths = (8,),
        hidden: Widths = (256,),
        activation: Activation = "SiLU",
    ) -> None:
        super().__init__(latent_dim)
        self.sizes = [self.latent_dim, *(int(g) for g in groups)]
        self.hidden = [int(w) for w in hidden]
        self.activation = activation
        # p(zᵢ|zᵢ₊₁) for every group but the top one, whose prior is N(0, I).
        self.top_down = nn.ModuleList(
            _GaussianLayer(above, self.hidden, below, activation)
            for below, above in itertools.pairwise(self.sizes)
        )
        self.build_inference(int(features))

    @abc.abstractmethod
    def build_inference(self, features: int) -> None:
        """Build the inference path's own networks (`features`: the encoder's output)."""

    def assemble(
        self,
        eps: Tensor,
        groups: list[Tensor],
        means: list[Tensor],
        log_vars: list[Tensor],
        log_p: Tensor,
        kl: dict[str, Tensor],
    ) -> Chain:
        """A `Chain` from each group's draw and posterior parameters (from the data up):
        log q(z|x) = log N(ε) − Σ log σ, the flow's change of variables."""
        log_var = torch.cat(log_vars, dim=-1)
        return Chain(
            z=torch.cat(groups, dim=-1),
            mean=torch.cat(means, dim=-1),
            log_var=log_var,
            log_q=standard_normal_log_density(eps) - 0.5 * log_var.sum(-1),
            log_p=log_p,
            kl=dict(sorted(kl.items())),
        )

    @property
    def group_sizes(self) -> dict[str, int]:
        return {f"z{i + 1}": size for i, size in enumerate(self.sizes)}

    def split(self, z: Tensor) -> list[Tensor]:
        """The concatenated latent (..., code_dim) as its groups, from the data up."""
        return list(torch.split(z, self.sizes, dim=-1))

    @abc.abstractmethod
    def chain(self, eps: Tensor, h: Tensor) -> Chain:
        """The draw of noise `eps` (..., B, code_dim) given encoder features `h` (B, F)."""

    def mean_pass(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """Each group's posterior mean and log-variance with every group drawn at its
        mean (zero noise): the deterministic code of x (B, code_dim) twice."""
        zeros = torch.zeros(h.shape[0], self.code_dim, dtype=h.dtype, device=h.device)
        chain = self.chain(zeros, h)
        return chain.mean, chain.log_var

    def prior_params(self, above: Tensor, level: int) -> tuple[Tensor, Tensor]:
        """Mean and log-variance of p(z_level|z_level+1) (0-based level), from the draw
        of the group above."""
        mean, log_var = self.top_down[level](above)
        return mean, log_var

    def log_prior(self, z: Tensor) -> Tensor:
        """log p(z) of concatenated latents (..., code_dim) -> (...)."""
        groups = self.split(z)
        top = groups[-1]
        log_p = standard_normal_log_density(top)
        for level in range(len(groups) - 1):
            mean, log_var = self.prior_params(groups[level + 1], level)
            log_p = log_p + _gaussian_log_density(groups[level], mean, log_var)
        return log_p

    def sample_prior(
        self, n: int, temperature: float = 1.0, generator: torch.Generator | None = None
    ) -> Tensor:
        """`n` ancestral draws of [z1, z2, ...] (n, code_dim), each group's noise scaled
        by `temperature`."""
        like = next(self.parameters())  # the device and dtype of the draws
        groups = [temperature * torch.randn(n, self.sizes[-1], generator=generator).to(like)]
        for level in reversed(range(len(self.sizes) - 1)):
            mean, log_var = self.prior_params(groups[0], level)
            noise = torch.randn(n, self.sizes[level], generator=generator).to(like)
            groups.insert(0, mean + temperature * torch.exp(0.5 * log_var) * noise)
        return torch.cat(groups, dim=-1)

    def kl_names(self) -> list[str]:
        return list(self.group_sizes)


class BottomUpHierarchy(Hierarchy):
    """Burda et al.'s hierarchy: q(z1|x) from the encoder's features, q(zᵢ₊₁|zᵢ) from the
    group below (see `Hierarchy` for the arguments)."""

    def build_inference(self, features: int) -> None:
        self.head = nn.Linear(features, 2 * self.latent_dim)
        self.bottom_up = nn.ModuleList(
            _GaussianLayer(below, self.hidden, above, self.activation)
            for below, above in itertools.pairwise(self.sizes)
        )

    def chain(self, eps: Tensor, h: Tensor) -> Chain:
        noise = self.split(eps)
        out = self.head(h)
        mean, log_var = out[:, : self.latent_dim], bounded(out[:, self.latent_dim :])
        groups: list[Tensor] = []
        means: list[Tensor] = []
        log_vars: list[Tensor] = []
        for level, e in enumerate(noise):
            if level:
                mean, log_var = self.bottom_up[level - 1](groups[-1])
            groups.append(mean + torch.exp(0.5 * log_var) * e)
            means.append(mean.expand_as(e))
            log_vars.append(log_var.expand_as(e))
        names = self.kl_names()
        kl: dict[str, Tensor] = {}
        log_p = torch.zeros((), dtype=eps.dtype, device=eps.device)
        for level in range(len(groups) - 1):
            p_mean, p_log_var = self.prior_params(groups[level + 1], level)
            log_p_level = _gaussian_log_density(groups[level], p_mean, p_log_var)
            log_q_level = standard_normal_log_density(noise[level]) - 0.5 * log_vars[level].sum(-1)
            kl[names[level]] = log_q_level - log_p_level  # p depends on the draw above
            log_p = log_p + log_p_level
        top_log_p = standard_normal_log_density(groups[-1])
        zeros = torch.zeros_like(means[-1])
        kl[names[-1]] = _gaussian_kl(means[-1], log_vars[-1], zeros, zeros)
        return self.assemble(eps, groups, means, log_vars, log_p + top_log_p, kl)


class LadderHierarchy(Hierarchy):
    """Sønderby et al.'s ladder: a deterministic bottom-up pass (MLPs of `hidden`
    widths from the encoder's features) gives each group an estimate, merged on the
    way down with the top-down prior by precision (see `Hierarchy` for the arguments)."""

    def build_inference(self, features: int) -> None:
        width = self.hidden[-1]
        # d1 = the encoder's features, dᵢ₊₁ = MLP(dᵢ); each dᵢ gives zᵢ's estimate.
        self.deterministic = nn.ModuleList(
            nn.Sequential(
                _mlp([features if level == 0 else width, *self.hidden], self.activation),
                make_activation(self.activation),
            )
            for level in range(len(self.sizes) - 1)
        )
        self.estimates = nn.ModuleList(
            nn.Linear(features if level == 0 else width, 2 * size)
            for level, size in enumerate(self.sizes)
        )

    def _estimates(self, h: Tensor) -> list[tuple[Tensor, Tensor]]:
        """Each group's bottom-up estimate (mean, log-variance), from the data up."""
        out, d = [], h
        for level, size in enumerate(self.sizes):
            if level:
                d = self.deterministic[level - 1](d)
            params = self.estimates[level](d)
            out.append((params[:, :size], bounded(params[:, size:])))
        return out

    def chain(self, eps: Tensor, h: Tensor) -> Chain:
        noise = self.split(eps)
        estimates = self._estimates(h)
        names = self.kl_names()
        top = len(self.sizes) - 1
        mean, log_var = estimates[top]
        mean, log_var = mean.expand_as(noise[top]), log_var.expand_as(noise[top])
        z = mean + torch.exp(0.5 * log_var) * noise[top]
        zeros = torch.zeros_like(mean)
        groups, means, log_vars = [z], [mean], [log_var]
        kl = {names[top]: _gaussian_kl(mean, log_var, zeros, zeros)}
        log_p = standard_normal_log_density(z)
        for level in reversed(range(top)):
            p_mean, p_log_var = self.prior_params(groups[0], level)
            e_mean, e_log_var = estimates[level]
            # Precision weighting: 1/σ_q² = 1/σ̂² + 1/σ_p², written in log space.
            log_var = -torch.logaddexp(-e_log_var, -p_log_var)
            mean = (e_mean * torch.exp(-e_log_var) + p_mean * torch.exp(-p_log_var)) * torch.exp(
                log_var
            )
            z = mean + torch.exp(0.5 * log_var) * noise[level]
            kl[names[level]] = _gaussian_kl(mean, log_var, p_mean, p_log_var)
            log_p = log_p + _gaussian_log_density(z, p_mean, p_log_var)
            groups.insert(0, z)
            means.insert(0, mean)
            log_vars.insert(0, log_var)
        return self.assemble(eps, groups, means, log_vars, log_p, kl)


class HierarchyPosterior(Posterior):
    """q([z1, z2, ...]|x) of a hierarchy as a flow from N(0, I) noise, its context the
    encoder's features (see the module docstring)."""

    gaussian = False

    def __init__(self, hierarchy: Hierarchy, features: int) -> None:
        super().__init__(hierarchy.code_dim)
        # A plain attribute, not a submodule: the VAE registers the hierarchy once.
        self._hierarchy = [hierarchy]
        self._features = int(features)

    @property
    def context_features(self) -> int:
        return self._features

    def flow(self, z0: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        chain = self._hierarchy[0].chain(z0, context)
        return chain.z, standard_normal_log_density(z0) - chain.log_q


class HierarchyPrior(Prior):
    """p([z1, z2, ...]) of a hierarchy: N(0, I) on the top group, each group below a
    Gaussian given the one above."""

    def __init__(self, hierarchy: Hierarchy) -> None:
        super().__init__(hierarchy.code_dim)
        self._hierarchy = [hierarchy]

    def log_prob(self, z: Tensor) -> Tensor:
        return self._hierarchy[0].log_prior(z)

    def sample(
        self, n: int, temperature: float = 1.0, generator: torch.Generator | None = None
    ) -> Tensor:
        return self._hierarchy[0].sample_prior(n, temperature, generator)
