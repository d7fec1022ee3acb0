"""The β-VAE as a LightningModule.

encoder backbone -> posterior q(z|x) (a diagonal Gaussian, optionally pushed through a
flow: `posterior=`) -> reparameterised z -> decoder backbone -> likelihood p(x|z), with
the prior of `prior=` (N(0, I) by default). A conditional VAE (`conditional=`, Sohn et
al. 2015) reads labels y beside x: q(z|x, y) sees them beside the encoder's features,
p(x|z, y) beside z, each label one-hot; the prior stays p(z). Units follow docs/design.md: nats per
example, summed over all data and latent dimensions, averaged over the batch.

The KL term is analytic (per dimension) for a Gaussian posterior under N(0, I), and the
single-sample estimate log q(z|x) − log p(z) otherwise (`kl_estimate`).

The constructor takes plain configs (mappings with a `_target_`), not modules, and
builds the parts itself from the data shape. That keeps `save_hyperparameters` free
of modules, so `VAE.load_from_checkpoint(path)` needs no extra arguments.
"""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import lightning as L
import torch
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn
from torch.distributions import Distribution, Independent, Normal
from torchmetrics import MeanMetric
from typing_extensions import override

from vaelab.config.constraints import PositiveInt
from vaelab.config.schema import TargetConfig
from vaelab.data.labels import LabelSpace, no_labels_error, one_hot
from vaelab.errors import ConfigError
from vaelab.lightning.internals import (
    CheapHookName,
    cached_signature,
    publish_callback_metrics,
    step_uncounted,
)
from vaelab.lightning.loop import AccumulationWindow, send_step_values
from vaelab.likelihoods import Likelihood
from vaelab.metrics.heldout import TestStageMetrics, VectorMean, kl_dim_values
from vaelab.models.hierarchy import (
    Hierarchy,
    HierarchyPosterior,
    HierarchyPrior,
    LatentStructure,
)
from vaelab.models.lr_schedule import build_scheduler
from vaelab.models.noise import example_draw
from vaelab.models.optimizer import (
    OptimizerConfig,
    apply_config_to_saved_optimizer,
    optimizer_arguments,
)
from vaelab.models.posteriors import Posterior
from vaelab.models.priors import Prior
from vaelab.models.quantise import QuantisedPrior, VectorQuantiser
from vaelab.objectives import (
    LatentBatch,
    Objective,
    ObjectiveOutput,
    objective_from_beta_schedule,
)
from vaelab.objectives.base import LOG_2PI
from vaelab.runs.checkpoints import ARCHITECTURE_DEFAULTS

log = logging.getLogger(__name__)

ELBO_TERMS = ("recon", "kl", "nelbo")


def _build_sized(config: Mapping[str, Any], **sizes: Any) -> Any:
    """The object of a config, given those of `sizes` (latent_dim, data_shape) its
    target takes: objectives, priors and posteriors size their modules from them."""
    parameters = inspect.signature(get_class(config["_target_"])).parameters
    return instantiate(config, **{k: v for k, v in sizes.items() if k in parameters})


@dataclass(frozen=True)
class _Draws:
    """`LatentDraws` of one batch: q(z|x)'s parameters and the model's flow and prior."""

    mean: Tensor
    std: Tensor
    log_var: Tensor
    context: Tensor
    posterior: Posterior
    prior: Prior

    def draw(self, k: int) -> tuple[Tensor, Tensor]:
        eps = torch.randn((k, *self.mean.shape), dtype=self.std.dtype, device=self.std.device)
        return self.transform(self.mean + self.std * eps, eps)

    def transform(self, z0: Tensor, eps: Tensor) -> tuple[Tensor, Tensor]:
        """z = f(z0) and log q(z|x), for z0 = mean + std · eps."""
        z, log_det = self.posterior.flow(z0, self.context)
        log_q0 = -0.5 * (LOG_2PI + self.log_var + eps.square()).sum(-1)
        return z, log_q0 - log_det

    def log_prior(self, z: Tensor) -> Tensor:
        return self.prior.log_prob(z)

    def prior_sample(self, n: int) -> Tensor:
        with torch.no_grad():
            return self.prior.sample(n)


def _plain(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """A resolved plain dict: what goes into the checkpoint's hyperparameters."""
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    return dict(cfg)


class VAE(CheapHookName, L.LightningModule):
    """A VAE with pluggable encoder, decoder, likelihood and training objective.

    Args:
        data_shape: (C, H, W) of one example; the backbones are built for it.
        latent_dim: size of z.
        data_levels: values per pixel of the data (2 binary, 256 8-bit, None continuous);
            the likelihood checks it can model them, and bits/dim are reported only when
            the likelihood is discrete over exactly these levels.
        encoder: the encoder's config, with a `_target_`. Its defaults, and those of
            the four configs below, live in `conf/` only (`conf/train.yaml`'s `model:`
            block, the groups `model/encoder`, `likelihood`, `objective`), not here.
        decoder: the decoder's config, with a `_target_`.
        likelihood: the likelihood's config, with a `_target_`.
        objective: the objective's config, with a `_target_`.
        prior: p(z)'s config (conf/prior), with a `_target_`; checkpoints written before
            it existed have none: N(0, I).
        posterior: q(z|x)'s family (conf/posterior), with a `_target_`; None: the
            diagonal Gaussian.
        optimizer: the optimiser's config, with a `_target_`.
        compile: `torch.compile` the encoder and decoder forward passes.
        scheduler: a learning-rate schedule's `_target_` config, or None for a constant
            rate (`vaelab.models.lr_schedule`); checkpoints written before it existed
            have none.
        beta_schedule: what checkpoints written before `objective` existed call it; it
            stands in for `objective` in those checkpoints only.
        latent: the latent structure's config (conf/latent), with a `_target_`; None:
            one Gaussian group.
        conditional: condition the encoder and decoder on labels: False (none), True
            (every label of `label_sizes`), or the name or names of the labels to use.
        label_sizes: levels per label of the data, by name, in column order (the
            training app passes the data module's `label_space`, as it passes
            `data_shape`); needed when `conditional` is set.
    """

    def __init__(
        self,
        data_shape: Sequence[int],
        *,
        latent_dim: PositiveInt,
        encoder: TargetConfig,
        decoder: TargetConfig,
        likelihood: TargetConfig,
        optimizer: OptimizerConfig,
        compile: bool,
        objective: TargetConfig | None = None,
        data_levels: int | None = None,
        scheduler: TargetConfig | None = None,
        beta_schedule: Mapping[str, Any] | None = None,
        prior: TargetConfig | None = None,
        posterior: TargetConfig | None = None,
        latent: TargetConfig | None = None,
        conditional: bool | str | Sequence[str] = False,
        label_sizes: Mapping[str, PositiveInt] | None = None,
    ) -> None:
        super().__init__()
        data_shape = tuple(int(s) for s in data_shape)
        chosen = self._chosen_labels(conditional, label_sizes)
        if objective is None:
            if beta_schedule is None:
                raise ConfigError("the VAE needs an objective: give objective= (conf/objective)")
            objective = objective_from_beta_schedule(_plain(beta_schedule))
        self.save_hyperparameters(
            {
                "data_shape": list(data_shape),
                "latent_dim": int(latent_dim),
                "data_levels": data_levels,
                "encoder": _plain(encoder),
                "decoder": _plain(decoder),
                "likelihood": _plain(likelihood),
                "objective": _plain(objective),
                "optimizer": _plain(optimizer),
                "scheduler": None if scheduler is None else _plain(scheduler),
                "compile": bool(compile),
                # checkpoints written before these groups existed: N(0, I), a Gaussian
                "prior": _plain(prior or ARCHITECTURE_DEFAULTS["prior"]),
                "posterior": _plain(posterior or ARCHITECTURE_DEFAULTS["posterior"]),
                "latent": _plain(latent or ARCHITECTURE_DEFAULTS["latent"]),
                # the labels chosen, resolved: the same model whatever `conditional` said
                "conditional": list(chosen) if chosen else False,
                "label_sizes": chosen or None,
            }
        )
        hp = self.hparams
        self.data_shape = data_shape
        self.latent_dim = int(latent_dim)
        channels = data_shape[0]
        self.likelihood: Likelihood = instantiate(hp["likelihood"], channels=channels)
        self.likelihood.check_data(data_levels)
        self.data_levels = data_levels
        #: levels per label the model is conditioned on, by name ({}: unconditional)
        self.label_sizes: dict[str, int] = chosen
        self.label_names = tuple(chosen)
        label_features = sum(chosen.values())  # the labels' one-hot vectors, concatenated
        self.encoder: nn.Module = instantiate(hp["encoder"], in_shape=data_shape)
        # What the posterior's head reads: the encoder's features and the labels.
        features = int(self.encoder.out_features) + label_features
        #: the latent groups (`latent=`): one Gaussian group, or a hierarchy of them
        self.latents: LatentStructure = _build_sized(
            hp["latent"], latent_dim=self.latent_dim, features=features
        )
        #: size of the concatenated latent [z1, z2, ...] (latent_dim for one group)
        self.code_dim = self.latents.code_dim
        self.hierarchy = self.latents if isinstance(self.latents, Hierarchy) else None
        self.quantiser = self.latents if isinstance(self.latents, VectorQuantiser) else None
        self.posterior: Posterior = _build_sized(hp["posterior"], latent_dim=self.latent_dim)
        if self.latents.single_group:
            self.posterior_head = nn.Linear(
                features, 2 * self.latent_dim + self.posterior.context_features
            )
        out_shape = (channels * self.likelihood.params_per_channel, *data_shape[1:])
        self.decoder: nn.Module = instantiate(
            hp["decoder"], latent_dim=self.latent_dim + label_features, out_shape=out_shape
        )
        self.objective: Objective = _build_sized(hp["objective"], latent_dim=self.latent_dim)
        self.prior: Prior = _build_sized(
            hp["prior"], latent_dim=self.latent_dim, data_shape=data_shape
        )
        if self.hierarchy is not None:
            self._check_hierarchy_parts()
            # The hierarchy is a flow from N(0, I) noise under its own prior chain
            # (vaelab.models.hierarchy): the flow-posterior path serves it unchanged.
            self.posterior = HierarchyPosterior(self.hierarchy, features)
            self.prior = HierarchyPrior(self.hierarchy)
        if self.quantiser is not None:
            self._check_hierarchy_parts()
            self.prior = QuantisedPrior(self.quantiser)
        self._check_latent_family()
        if chosen and self.prior.needs_unconditional_encoder:
            raise ConfigError(
                f"{type(self.prior).__name__} encodes pseudo-inputs without labels, which a "
                "conditional encoder cannot: use prior=normal, mog or flow, or "
                "conditional=false"
            )
        self.prior.bind(self.posterior_params)
        # The KL in closed form per dimension: a Gaussian posterior under a prior that
        # has one (N(0, I)); otherwise log q(z|x) − log p(z) of the sample.
        self.analytic_kl = self.posterior.gaussian and self.prior.standard_normal
        # Compiled forward functions, not compiled modules: the state dict keeps its
        # plain keys, so compiled and eager checkpoints load into each other.
        self._encoder_forward = torch.compile(self.encoder.forward) if compile else self.encoder
        self._decoder_forward = torch.compile(self.decoder.forward) if compile else self.decoder
        #: the ELBO's terms, and each group's KL (`kl/<group>`) under a hierarchy
        self._group_kl_terms = tuple(f"kl/{g}" for g in self._group_sizes() or ())
        self._epoch_terms = (*ELBO_TERMS, *self._group_kl_terms)
        self.eval_metrics = nn.ModuleDict(
            {
                stage: nn.ModuleDict({k: MeanMetric() for k in (*self._epoch_terms, "loss")})
                for stage in ("val", "test")
            }
        )
        self.val_kl_per_dim = VectorMean(self.latent_dim)
        # The test stage's extras (IWAE bound, latent health); `configure_evaluation`.
        self.test_extras = TestStageMetrics(
            self.code_dim, per_dim_kl=self.analytic_kl, groups=self._group_sizes()
        )
        self._eval_beta: dict[str, float] = {}
        self._train_totals = torch.zeros(3)
        self._train_count = 0
        self.last_train_step: dict[str, float] = {}  # the values last sent to the loggers
        self._term_keys: dict[str, str] = {}  # objective term -> its train/ key
        self.example_input_array: Tensor | tuple[Tensor, Tensor] = torch.zeros(2, *data_shape)
        if chosen:
            self.example_input_array = (
                self.example_input_array,
                torch.zeros(2, len(chosen), dtype=torch.long),
            )
        self.automatic_optimization = False  # see the loop hooks below
        self.accumulate_grad_batches = 1
        self._scheduled = scheduler is not None  # a learning-rate schedule to step
        self._step_lr: float | None = None  # the rate the last optimiser step used

    @staticmethod
    def _chosen_labels(
        conditional: bool | str | Sequence[str], label_sizes: Mapping[str, int] | None
    ) -> dict[str, int]:
        """The labels `conditional` picks from `label_sizes`, with their levels."""
        if conditional is False:
            return {}
        if not label_sizes:
            raise no_labels_error("the data")
        space = LabelSpace(tuple(label_sizes), tuple(int(v) for v in label_sizes.values()))
        return space.select(conditional)

    @property
    def conditional(self) -> bool:
        """Whether the encoder and decoder read labels (`label_names`)."""
        return bool(self.label_sizes)

    def _label_vector(self, labels: Tensor | None, rows: int) -> Tensor:
        """The labels' one-hot vectors (rows, Σ levels), for `rows` examples or draws:
        labels (B, K) of B examples serve rows = n·B draws taken sample-major (the n
        draws of example b at rows b, B + b, ...), as the IWAE bounds lay them out."""
        if labels is None:
            raise ValueError(
                f"this model is conditional on {list(self.label_names)}: pass labels=, "
                f"label indices (B, {len(self.label_names)})"
            )
        vector = one_hot(labels.to(self.device), tuple(self.label_sizes.values()))
        if rows != vector.shape[0]:
            if rows % vector.shape[0]:
                raise ValueError(f"{vector.shape[0]} labels cannot serve {rows} latents")
            vector = vector.repeat(rows // vector.shape[0], 1)
        return vector

    def _features(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        """What the posterior reads of `x`: the encoder's features, and for a
        conditional model the labels' one-hot vectors beside them."""
        h: Tensor = self._encoder_forward(x)
        if not self.label_sizes:
            return h
        return torch.cat([h, self._label_vector(labels, h.shape[0]).to(h)], dim=1)

    def _decoder_input(self, z: Tensor, labels: Tensor | None) -> Tensor:
        """What the decoder reads: z1 (`_bottom`), and the labels beside it."""
        bottom = self._bottom(z)
        if not self.label_sizes:
            return bottom
        return torch.cat([bottom, self._label_vector(labels, bottom.shape[0]).to(bottom)], dim=1)

    def _check_hierarchy_parts(self) -> None:
        """A hierarchy or a quantiser brings its own prior and posterior: refuse others in
        one line."""
        latent = type(self.latents).__name__
        if not self.prior.standard_normal or not self.posterior.gaussian:
            raise ConfigError(
                f"{latent} has its own prior and posterior, so it takes neither "
                f"{type(self.prior).__name__} nor {type(self.posterior).__name__}: use "
                "prior=normal posterior=gaussian, or latent=gaussian for another prior "
                "or posterior"
            )

    def _group_sizes(self) -> dict[str, int] | None:
        """Each latent group's size by name, for a model with several (None: one)."""
        return None if self.hierarchy is None else self.hierarchy.group_sizes

    def _check_latent_family(self) -> None:
        """Refuse, in one line, a prior, posterior or latent structure the objective's
        definition excludes."""
        objective, prior, posterior = (
            type(self.objective).__name__,
            type(self.prior).__name__,
            type(self.posterior).__name__,
        )
        if self.objective.needs_quantised != (self.quantiser is not None):
            raise ConfigError(
                f"{objective} trains quantised latents only, not {type(self.latents).__name__}: "
                "use latent=vq with objective=vq"
                if self.objective.needs_quantised
                else f"latent=vq trains with its own loss, not {objective}: use objective=vq"
            )
        reason = self.objective.needs_single_group
        if reason and self.hierarchy is not None:
            raise ConfigError(
                f"{objective} is defined on one group of latents ({reason}), not on "
                f"{type(self.latents).__name__}'s {len(self.hierarchy.sizes)}: use "
                "latent=gaussian, or an objective that takes a hierarchy "
                "(objective=beta_vae, iwae, info_vae or capacity)"
            )
        reason = self.objective.needs_standard_normal_prior
        if reason and not self.prior.standard_normal:
            raise ConfigError(
                f"{objective} works only with the prior N(0, I) ({reason}), not {prior}: "
                "use prior=normal, or an objective that takes any prior "
                "(objective=beta_vae, iwae, info_vae, factor_vae or capacity)"
            )
        reason = self.objective.needs_gaussian_posterior
        if reason and not self.posterior.gaussian:
            raise ConfigError(
                f"{objective} works only with a Gaussian posterior ({reason}), not "
                f"{posterior}: use posterior=gaussian, or an objective that takes any "
                "posterior (objective=beta_vae, iwae, info_vae, factor_vae or capacity)"
            )

    @property
    def posterior_family(self) -> str:
        """q(z|x)'s family, as metrics.json names it."""
        return "PointMass" if self.quantiser is not None else type(self.posterior).__name__

    @property
    def kl_estimate(self) -> str:
        """How the KL term is computed: `analytic`, `single-sample`, or `constant` (the
        uniform prior over a quantiser's codes: positions · log K) (metrics.json)."""
        if self.quantiser is not None:
            return "constant"
        return "analytic" if self.analytic_kl else "single-sample"

    # ----------------------------------------------------------------- the model
    # Every method that reads x or decodes z takes `labels` (B, K), the label indices
    # of a conditional model's examples (ignored by an unconditional one).
    def encode(self, x: Tensor, labels: Tensor | None = None) -> Independent[Normal]:
        """The encoder's diagonal Gaussian, one event of size latent_dim per example:
        q(z|x) itself for `posterior=gaussian`, the base q0(z0|x) under a flow."""
        mean, log_var = self.posterior_params(x, labels)
        return Independent(Normal(mean, torch.exp(0.5 * log_var), validate_args=False), 1)

    def posterior_params(self, x: Tensor, labels: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Mean and log-variance of the encoder's Gaussian, each (B, latent_dim); for a
        hierarchy, every group's with each group drawn at its mean (B, code_dim)."""
        if self.hierarchy is not None:
            return self.hierarchy.mean_pass(self._features(x, labels))
        if self.quantiser is not None:  # the quantised vectors, a point mass
            z_q = self.quantiser.quantise(self._features(x, labels)).z_q
            return z_q, torch.zeros_like(z_q)
        mean, log_var, _ = self._posterior_outputs(x, labels)
        return mean, log_var

    def _posterior_outputs(
        self, x: Tensor, labels: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The encoder head's mean, log-variance and flow context (B, C; C = 0 for a
        Gaussian posterior). A hierarchy's base is N(0, I) noise (B, code_dim), its
        context the encoder's features."""
        if self.hierarchy is not None:
            h = self._features(x, labels)
            zeros = h.new_zeros(h.shape[0], self.code_dim)
            return zeros, zeros, h
        out = self.posterior_head(self._features(x, labels))
        d = self.latent_dim
        return out[:, :d], out[:, d : 2 * d], out[:, 2 * d :]

    def code(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        """Each example's latent code (B, D): the posterior mean, or under a flow the
        flow applied to its base mean (the point z0 = μ maps to); for a hierarchy every
        group's mean, each drawn at its mean (B, code_dim)."""
        if not self.latents.single_group:
            return self.posterior_params(x, labels)[0]
        mean, _, context = self._posterior_outputs(x, labels)
        if self.posterior.gaussian:
            return mean
        return self.posterior.flow(mean, context)[0]

    def code_indices(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        """Each example's code index at every position (B, positions), under `latent=vq`."""
        if self.quantiser is None:
            raise ConfigError("code indices need a model trained with latent=vq")
        return self.quantiser.indices(self._features(x, labels))

    def decode(self, z: Tensor, labels: Tensor | None = None) -> Distribution:
        """p(x|z): a distribution whose event is one whole image (C, H, W). Under a
        hierarchy `z` is the concatenated latent (N, code_dim); the decoder reads z1.
        A conditional model's `labels` (B, K) serve N = n·B latents sample-major."""
        h = self._decoder_forward(self._decoder_input(z, labels))
        distribution: Distribution = self.likelihood(h)
        return distribution

    def decoder_for(self, labels: Tensor | None) -> Callable[[Tensor], Distribution]:
        """`decode` with these examples' labels bound: z -> p(x|z, y), what the IWAE
        bound and the samplers call."""
        return lambda z: self.decode(z, labels)

    def _bottom(self, z: Tensor) -> Tensor:
        """The group the decoder reads: z itself, or z1 of a hierarchy's [z1, z2, ...]."""
        return z if self.hierarchy is None else z[..., : self.latent_dim]

    @override
    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        """Mean reconstruction of `x` (what `example_input_array` traces)."""
        return self.reconstruct(x, labels)

    def elbo(
        self,
        x: Tensor,
        per_dim: bool = False,
        noise: Tensor | None = None,
        labels: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Per-example terms in nats, each of shape (B,), from one posterior sample:
        recon = −log p(x|z), kl = KL(q(z|x) ‖ p(z)), nelbo = recon + kl = −ELBO.
        With `per_dim`, also `kl_per_dim` (B, latent_dim), whose rows sum to `kl`
        (left out where the KL has no closed form per dimension).
        `noise` (B, latent_dim): the standard normal draw to reparameterise with
        (default: a fresh one)."""
        batch = self.latent_batch(x, noise=noise, labels=labels)
        terms = {"recon": batch.recon, "kl": batch.kl, "nelbo": batch.recon + batch.kl}
        if per_dim and batch.kl_per_dim is not None:
            terms["kl_per_dim"] = batch.kl_per_dim
        return terms

    @torch.no_grad()
    def sample(
        self,
        n: int,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        labels: Tensor | None = None,
    ) -> Tensor:
        """`n` images decoded from prior draws, the prior's noise scaled by
        `temperature` (N(0, temperature² I) for the standard normal): the likelihood's
        mean. A conditional model draws image i of class (labels) `labels[i]`."""
        z = self.prior.sample(n, temperature, generator).to(self.device)
        return self.decode(z, labels).mean

    @torch.no_grad()
    def reconstruct(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        """Decode the latent code of each image (`code`): the likelihood's mean, same shape."""
        return self.decode(self.code(x, labels), labels).mean

    def latent_batch(
        self,
        x: Tensor,
        step: int = 0,
        noise: Tensor | None = None,
        labels: Tensor | None = None,
    ) -> LatentBatch:
        """What an objective reads of batch `x` at optimiser step `step`: the posterior's
        parameters, one reparameterised sample (from `noise` if given), its
        log-likelihood and the KL: analytic per dimension, or log q(z|x) − log p(z)."""
        # The same quantities as `encode`, `decode(z).log_prob` and `kl_divergence` with
        # the prior (the tests check them against those), written on tensors: this is
        # the training step, and distribution objects cost a small model real time.
        log_likelihood = self._likelihood_for(labels)
        if self.hierarchy is not None:
            return self._hierarchy_batch(x, step, noise, labels, log_likelihood)
        if self.quantiser is not None:
            return self._quantised_batch(x, step, labels, log_likelihood)
        mean, log_var, context = self._posterior_outputs(x, labels)
        std = torch.exp(0.5 * log_var)
        eps = torch.randn_like(mean) if noise is None else noise.to(mean)
        z = mean + std * eps
        if self.analytic_kl:
            # KL(N(μ, σ²) ‖ N(0, 1)) per dimension, in closed form.
            kl_per_dim = self.prior.kl_per_dim(mean, log_var, std)
            log_px = log_likelihood(z, x)
            return LatentBatch(x, mean, log_var, z, log_px, kl_per_dim, step, log_likelihood)
        draws = _Draws(mean, std, log_var, context, self.posterior, self.prior)
        z, log_qz_x = draws.transform(z, eps)
        log_px = log_likelihood(z, x)
        return LatentBatch(
            x,
            mean,
            log_var,
            z,
            log_px,
            None,
            step,
            log_likelihood,
            log_qz_x=log_qz_x,
            log_pz=self.prior.log_prob(z),
            draws=draws,
        )

    def _hierarchy_batch(
        self,
        x: Tensor,
        step: int,
        noise: Tensor | None,
        labels: Tensor | None,
        log_likelihood: Callable[[Tensor, Tensor], Tensor],
    ) -> LatentBatch:
        """`latent_batch` of a hierarchy: one draw down its chain, each group's KL
        (`kl_groups`), and more draws as a flow from N(0, I) noise (`draws`)."""
        assert self.hierarchy is not None
        h = self._features(x, labels)
        eps = (
            torch.randn(h.shape[0], self.code_dim, dtype=h.dtype, device=h.device)
            if noise is None
            else noise.to(h)
        )
        chain = self.hierarchy.chain(eps, h)
        zeros = torch.zeros_like(eps)
        draws = _Draws(zeros, torch.ones_like(eps), zeros, h, self.posterior, self.prior)
        return LatentBatch(
            x,
            chain.mean,
            chain.log_var,
            chain.z,
            log_likelihood(chain.z, x),
            None,
            step,
            log_likelihood,
            log_qz_x=chain.log_q,
            log_pz=chain.log_p,
            draws=draws,
            kl_groups=chain.kl,
        )

    def _quantised_batch(
        self,
        x: Tensor,
        step: int,
        labels: Tensor | None,
        log_likelihood: Callable[[Tensor, Tensor], Tensor],
    ) -> LatentBatch:
        """`latent_batch` under `latent=vq`: the quantised vectors decoded (no noise: the
        posterior is a point mass) and the constant KL to the uniform prior. In training
        mode this moves the codebook (vaelab.models.quantise)."""
        assert self.quantiser is not None
        quantised = self.quantiser(self._features(x, labels))
        zeros = quantised.commitment.new_zeros(x.shape[0])
        return LatentBatch(
            x,
            quantised.z_e,
            torch.zeros_like(quantised.z_e),
            quantised.z_q,
            log_likelihood(quantised.z_q, x),
            None,
            step,
            log_likelihood,
            log_qz_x=zeros,
            log_pz=zeros - self.quantiser.kl,
            quantised=quantised,
        )

    def _log_likelihood(self, z: Tensor, x: Tensor, labels: Tensor | None = None) -> Tensor:
        """log p(x|z, y) per example, for latents (N, D) and data (N, ...); a conditional
        model's `labels` serve the N latents by `decode`'s sample-major rule."""
        h = self._decoder_forward(self._decoder_input(z, labels))
        log_px: Tensor = self.likelihood.log_prob(h, x)
        return log_px

    def _likelihood_for(self, labels: Tensor | None) -> Callable[[Tensor, Tensor], Tensor]:
        """`_log_likelihood` with these examples' labels bound: the batch's
        `log_likelihood`, which the IWAE objective calls with n draws per example."""
        return lambda z, x: self._log_likelihood(z, x, labels)

    def split_batch(self, batch: Tensor | Sequence[Tensor]) -> tuple[Tensor, Tensor | None]:
        """A training batch's data and labels: `x`, or `(x, labels)` where the data
        module serves labels (a conditional model's)."""
        if isinstance(batch, Tensor):
            x, labels = batch, None
        else:
            x, labels = batch[0], (batch[1] if len(batch) > 1 else None)
        if self.label_sizes and labels is None:
            raise ValueError(
                f"this model is conditional on {list(self.label_names)} but its batches "
                "carry no labels: the data module must serve them "
                "(InMemoryDataModule.serve_labels)"
            )
        return x, labels

    def compute_objective(
        self,
        x: Tensor,
        step: int = 0,
        noise: Tensor | None = None,
        labels: Tensor | None = None,
    ) -> tuple[ObjectiveOutput, dict[str, Tensor]]:
        """The training objective on batch `x` at optimiser step `step`, and the batch
        means of the ELBO terms, `recon` and `kl` (β-free, whatever the objective)."""
        batch = self.latent_batch(x, step, noise, labels)
        means = {"recon": batch.recon_mean, "kl": batch.kl_mean}
        if batch.kl_groups is not None:
            means.update({f"kl/{g}": kl.mean() for g, kl in batch.kl_groups.items()})
        return self.objective(batch), means

    # ----------------------------------------------------------- the loop hooks
    # Lightning's per-step machinery is a real share of a small model's step on a CPU:
    # bench/speed.py measures it against a hand-written loop. What keeps it small here:
    # manual optimisation (zero_grad, backward and step written out, as in a hand
    # loop, without automatic optimisation's closure layers; every hook, precision,
    # DDP and checkpoint path is the same); step values sent to the loggers only on the
    # steps they record, and not through `self.log`; and two Lightning internals made
    # cheap (`CheapHookName`, `cached_signature`, in vaelab.lightning.internals).
    def configure_evaluation(self, iwae_k: int = 1, max_decoded: int = 4096) -> None:
        """The test stage's IWAE bound: `iwae_k` importance samples per example (1: the
        ELBO itself), decoded `max_decoded` latents at a time (`eval.iwae_k`,
        `eval.iwae_max_decoded` of `src/eval.py`)."""
        if self.quantiser is not None:
            # A point-mass posterior: every importance weight is the same, L_k = L_1.
            iwae_k = 1
        self.test_extras = TestStageMetrics(
            self.code_dim,
            iwae_k,
            max_decoded,
            per_dim_kl=self.analytic_kl,
            groups=self._group_sizes(),
        ).to(self.device)

    def configure_accumulation(self, batches: int | None) -> None:
        """Step the optimiser once every `batches` batches, on the mean of their
        gradients: `trainer.accumulate_grad_batches` of the config, which the training
        app hands to the model (Lightning refuses it under manual optimisation). The
        global step then counts optimiser steps, as Lightning's own accumulation does."""
        self.accumulate_grad_batches = int(batches or 1)

    @cached_signature
    @override
    def training_step(self, batch: Tensor | tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        optimizers = self.optimizers()
        optimizers = optimizers if isinstance(optimizers, list) else [optimizers]
        step = self.global_step  # optimiser steps so far; the step below adds one
        x, labels = self.split_batch(batch)
        out, means = self.compute_objective(x, step, labels=labels)
        total = out.loss if out.own_loss is None else out.loss + out.own_loss
        window = AccumulationWindow.at(
            batch_idx, self.accumulate_grad_batches, self.trainer.num_training_batches
        )
        if window.opens:
            for optimizer in optimizers:
                optimizer.zero_grad(set_to_none=True)
        # The objective's own loss (a discriminator's) reaches only its own parameters,
        # and the VAE's loss only the VAE's: one backward pass serves both.
        self.manual_backward(window.share(total))
        if window.closes:
            vae_optimizer, *own_optimizers = optimizers
            if self._scheduled:
                self._step_lr = float(vae_optimizer.param_groups[0]["lr"])
            vae_optimizer.step()
            for optimizer in own_optimizers:  # one batch is one global step, as without them
                step_uncounted(optimizer)
            if self._scheduled:
                # Once per optimiser step, a skipped (non-finite) one too: the schedule
                # is a function of the global step.
                self._lr_scheduler().step()
        # Per-step bookkeeping is one tensor add; the step's values reach the loggers
        # only on the steps they record, and the epoch means once per epoch.
        terms = torch.stack([out.loss, means["recon"], means["kl"]]).detach()
        self._train_totals.add_(terms, alpha=x.shape[0])  # in place: no Module setattr
        self._train_count += x.shape[0]
        if window.closes:
            values = self._train_step_tensors(out, terms)
            for key in self._group_kl_terms:
                values[f"train/{key}"] = means[key].detach()
            # What `self.log(..., on_step=True)` would leave there: monitors
            # (EarlyStopping, ModelCheckpoint) read `train/*` after every step.
            publish_callback_metrics(self.trainer, values)
            # Set by Lightning's Trainer.__init__, not declared on the class.
            every = int(getattr(self.trainer, "log_every_n_steps", 0))
            if every and (step + 1) % every == 0:
                self._log_train_step(step, values)
        return out.loss.detach()

    def _train_step_tensors(self, out: ObjectiveOutput, terms: Tensor) -> dict[str, Tensor]:
        """The `train/*` values of a step, as 0-d tensors: (loss, recon, kl) batch means,
        −ELBO, and the objective's own terms (β in force, TC estimate, ...)."""
        loss, recon, kl = terms.unbind()
        values = {"train/loss": loss, "train/recon": recon, "train/kl": kl}
        values["train/nelbo"] = recon + kl  # float32, as the loss: equal at β = 1
        if self._step_lr is not None:
            values["train/lr"] = torch.tensor(self._step_lr)
        keys = self._term_keys
        for name, value in out.terms.items():
            key = keys.get(name) or keys.setdefault(name, f"train/{name}")
            values[key] = value.detach() if isinstance(value, Tensor) else torch.tensor(value)
        return values

    def _log_train_step(self, step: int, values: dict[str, Tensor]) -> None:
        """`train/*` of this step to every logger (`vaelab.lightning.loop`), and to the
        progress bar (`last_train_step`, which `vaelab.callbacks.ProgressBar` shows):
        Lightning would convert the progress bar's values on every step, logged or not."""
        self.last_train_step = send_step_values(self.loggers, values, step, self.current_epoch)

    @override
    def on_train_epoch_start(self) -> None:
        self._train_totals = torch.zeros(3, device=self.device)
        self._train_count = 0

    @override
    def on_train_epoch_end(self) -> None:
        if not self._train_count:
            return
        loss, recon, kl = (self._train_totals / self._train_count).tolist()
        # DDP ranks see equally many examples, so the mean of rank means is exact.
        epoch = {
            "train/loss_epoch": loss,
            "train/recon_epoch": recon,
            "train/kl_epoch": kl,
            "train/nelbo_epoch": recon + kl,
        }
        self.log_dict(epoch, on_step=False, on_epoch=True, sync_dist=True)

    @override
    def validation_step(self, batch: Sequence[Tensor], batch_idx: int) -> None:
        latents = self._update_eval_metrics("val", *batch)
        if latents.kl_per_dim is not None:
            self.val_kl_per_dim.update(latents.kl_per_dim)

    @override
    def test_step(self, batch: Sequence[Tensor], batch_idx: int) -> None:
        x, index, *labels = batch  # labels where the data module serves them
        latents = self._update_eval_metrics("test", *batch)
        draws = latents.draws
        mean, log_var, code = latents.mean, latents.log_var, None
        if self.hierarchy is not None and isinstance(draws, _Draws):
            # The IWAE bound draws the hierarchy's N(0, I) noise; active units read each
            # group's mean with every group drawn at its mean.
            mean, log_var = draws.mean, draws.log_var
            code = self.hierarchy.mean_pass(draws.context)[0]
        if self.quantiser is not None:  # active units of the quantised vectors
            code = latents.z
        self.test_extras.update(
            x,
            index,
            mean,
            log_var,
            latents.recon + latents.kl,
            latents.kl_per_dim,
            self.decoder_for(labels[0] if labels else None),
            self._iwae_densities(draws.context) if isinstance(draws, _Draws) else None,
            code=code,
        )

    @override
    def on_validation_epoch_end(self) -> None:
        values = self._compute_eval_metrics("val")
        # KL per latent dimension: which dimensions carry information (latent health).
        if self.analytic_kl:
            values.update(kl_dim_values("val", self.val_kl_per_dim.compute()))
        self.val_kl_per_dim.reset()
        self.log_dict(values)

    @override
    def on_test_epoch_end(self) -> None:
        values = self._compute_eval_metrics("test")
        values.update(self.test_extras.compute(self.data_shape, with_bpd="test/bpd" in values))
        self.log_dict(values)

    @property
    def test_latent_stats(self) -> dict[str, Tensor]:
        """KL per dimension and the variance of the posterior mean over the last test
        run, reduced over every rank: what `vaelab.eval` writes to eval.json."""
        return self.test_extras.latent_stats

    def metric_keys(self) -> frozenset[str]:
        """Every key this model logs (`train/*`, `val/*`, `test/*`), as the loggers and
        the Trainer's callback metrics get them: what a monitor or the optimised metric
        may name (`vaelab.config.checks.check_metric_names`). tests/test_metric_names.py
        trains each objective a step and checks that what it logged is listed here."""
        step = {"loss", "recon", "kl", "nelbo", *self._group_kl_terms, *self.objective.terms}
        if self._scheduled:
            step.add("lr")
        keys = {f"train/{k}" for k in step}
        keys |= {f"train/{k}_epoch" for k in ("loss", "recon", "kl", "nelbo")}
        bpd = ("bpd",) if self._reports_bpd() else ()
        epoch_means = {*self._epoch_terms, "loss", "beta", *bpd}
        for stage in ("val", "test"):
            keys |= {f"{stage}/{k}" for k in epoch_means}
        if self.analytic_kl:
            keys |= set(kl_dim_values("val", torch.zeros(self.latent_dim)))
        keys |= TestStageMetrics.keys(
            self.code_dim, self._reports_bpd(), self.analytic_kl, self._group_sizes()
        )
        return frozenset(keys)

    def _reports_bpd(self) -> bool:
        """Bits per dimension are reported when the likelihood is discrete over exactly
        the data's levels (a code length per data value)."""
        n_bins = self.likelihood.discrete_levels()
        return n_bins is not None and n_bins == self.data_levels

    @override
    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Resuming: the optimiser settings of this config, not the checkpoint's
        (`vaelab.models.optimizer.apply_config_to_saved_optimizer`). First of all, the
        checkpoint's tensors must match the checksum vaelab wrote with it."""
        from vaelab.runs.checkpoints import verify_checksum

        verify_checksum(checkpoint)
        apply_config_to_saved_optimizer(checkpoint, self.hparams["optimizer"], self._scheduled)

    @override
    def configure_optimizers(self) -> Any:
        """The VAE's optimiser (of every parameter but the objective's), then the
        objective's own (FactorVAE's discriminator), in that order in checkpoints; and
        the VAE optimiser's learning-rate schedule, if `model.scheduler` sets one
        (stepped by `training_step`: the VAE optimises manually)."""
        own = {id(p) for p in self.objective.parameters()}
        params = [p for p in self.parameters() if id(p) not in own]
        vae = instantiate(optimizer_arguments(self.hparams["optimizer"]), params=params)
        optimizers = [vae, *self.objective.own_optimizers()]
        scheduler = build_scheduler(self.hparams.get("scheduler"), vae, self.planned_steps)
        return optimizers if scheduler is None else (optimizers, [scheduler])

    def planned_steps(self) -> int | float:
        """The optimiser steps this fit will take (inf when neither `max_epochs` nor
        `max_steps` ends it): Lightning's estimate, per epoch counted in the model's own
        accumulated steps (`configure_accumulation`)."""
        trainer = self.trainer
        estimate = trainer.estimated_stepping_batches  # builds the train loader now
        batches = trainer.num_training_batches
        if trainer.max_epochs in (None, -1) or not math.isfinite(batches):
            return estimate
        steps = math.ceil(batches / self.accumulate_grad_batches) * max(trainer.max_epochs, 1)
        return min(steps, trainer.max_steps) if trainer.max_steps != -1 else steps

    def _lr_scheduler(self) -> Any:
        schedulers = self.lr_schedulers()
        return schedulers[0] if isinstance(schedulers, list) else schedulers

    @override
    def on_train_start(self) -> None:
        # After the loaders are set up: the number of training batches is known here.
        self.objective.set_dataset_size(self._training_examples())
        if self.global_step == 0:  # a fresh fit, not a resumed one
            self._initialise_prior()

    def _initialise_prior(self) -> None:
        """Hand training examples to the prior (a VampPrior's pseudo-inputs start as
        K of them), where the data module gives examples."""
        datamodule: Any = getattr(self.trainer, "datamodule", None)
        if not hasattr(datamodule, "example_batch"):
            return
        wanted = getattr(self.prior, "pseudo_inputs", None)
        if wanted is None:
            return
        self.prior.initialise_from(datamodule.example_batch(len(wanted), split="train"))

    def _iwae_densities(self, context: Tensor) -> tuple[Any, Any]:
        """The flow (z0 -> z, log|det|) and log p(z) the test stage's IWAE bound needs
        for a learned prior or a flow posterior."""

        def flow(z0: Tensor) -> tuple[Tensor, Tensor]:
            z, log_det = self.posterior.flow(z0, context)
            return z, log_det

        return flow, self.prior.log_prob

    def _training_examples(self) -> int:
        """Examples in the training split, for the objectives that weigh with it (0 when
        unknown, e.g. an endless stream: they then take the batch for the data)."""
        datamodule: Any = getattr(self.trainer, "datamodule", None)
        size = datamodule.train_size() if hasattr(datamodule, "train_size") else None
        if size:
            return int(size)
        batches = self.trainer.num_training_batches
        if not math.isfinite(batches):
            return 0
        batch_size = int(getattr(datamodule, "batch_size", 1) or 1)
        return int(batches) * batch_size * self.trainer.world_size

    # ----------------------------------------------------------------- helpers
    def _update_eval_metrics(
        self, stage: str, x: Tensor, index: Tensor, labels: Tensor | None = None
    ) -> LatentBatch:
        """Add the batch's terms to the stage's running means; the batch, for the rest."""
        # Per-example values into running means: the epoch value is the exact mean over
        # the examples seen (torchmetrics reduces sums and counts across DDP ranks).
        # Each example's posterior draw comes from its index, so the numbers do not
        # depend on batch size, rank count or the global RNG.
        noise = example_draw(index, self.code_dim)
        batch = self.latent_batch(x, self.global_step, noise, labels)
        out = self.objective(batch)
        self._eval_beta[stage] = float(out.terms.get("beta", 1.0))
        terms = {"recon": batch.recon, "kl": batch.kl, "nelbo": batch.recon + batch.kl}
        if batch.kl_groups is not None:
            terms.update({f"kl/{g}": kl for g, kl in batch.kl_groups.items()})
        for key, metric in self._stage_metrics(stage).items():
            metric.update(out.loss.detach().expand(x.shape[0]) if key == "loss" else terms[key])
        return batch

    def _stage_metrics(self, stage: str) -> dict[str, MeanMetric]:
        """The running means of one stage (`eval_metrics[stage]`), typed."""
        return cast(dict[str, MeanMetric], dict(cast(nn.ModuleDict, self.eval_metrics[stage])))

    def _compute_eval_metrics(self, stage: str) -> dict[str, float]:
        metrics = self._stage_metrics(stage)
        means = {k: float(metrics[k].compute()) for k in (*self._epoch_terms, "loss")}
        for metric in metrics.values():
            metric.reset()
        # loss: the objective on each batch, averaged over the examples; beta: in force
        values = {**means, "beta": self._eval_beta.get(stage, 1.0)}
        if self._reports_bpd():
            # bits per dimension: the negative ELBO as a code length per data value.
            values["bpd"] = means["nelbo"] / (math.prod(self.data_shape) * math.log(2))
        return {f"{stage}/{k}": v for k, v in values.items()}

    @classmethod
    @override
    def load_from_checkpoint(  # type: ignore[override]
        cls, checkpoint_path: Any, map_location: Any = None, **kwargs: Any
    ) -> VAE:
        """Load on the CPU unless told otherwise, so a GPU-written checkpoint opens anywhere."""
        return super().load_from_checkpoint(
            checkpoint_path, map_location=map_location or "cpu", **kwargs
        )
