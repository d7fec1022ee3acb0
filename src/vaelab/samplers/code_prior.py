"""A learned prior over a VQ-VAE's code indices (`sampler=code_prior`), the second stage
of van den Oord et al. 2017: fitted by maximum likelihood to the codes of the training
images, from the checkpoint, after the VQ-VAE (which trains under a uniform prior).

The model is a small causal transformer over the code positions,
p(k_1, ..., k_P) = Π_i p(k_i | k_<i): each position sees the codes before it (a start
vector stands in for the first one's), through masked self-attention. The paper used a
PixelCNN over the code grid; vaelab's codes are a sequence of positions whatever the
backbone, and the transformer is the causal model of a sequence.

Fitting holds out a tenth of the codes and keeps the weights with the lowest held-out
negative log-likelihood, checked every 100 steps: the codes of a few thousand images are
few for a transformer, and one fitted to its end on 10,000 images' codes scored the test
codes worse than the uniform prior (bench/vq.py).

Samples are drawn position by position (the logits divided by `temperature`) and looked
up in the model's codebook. Its negative log-likelihood of the test images' codes,
added to the reconstruction term, is the pair's bound on −log p(x) (`eval.py` reports
`nll_pair` and `bpd_pair`): a point-mass posterior has no entropy, so
−log p(x) ≤ −log p(x|z_q(x)) − log p(k(x)).
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from vaelab.config.constraints import Positive, PositiveInt
from vaelab.config.schema import Seed
from vaelab.errors import ConfigError
from vaelab.samplers.training import NetworkSampler, fit_density

log = logging.getLogger(__name__)


class CausalCodeModel(nn.Module):
    """p(k) over `positions` indices of `codes` values: a causal transformer of `layers`
    pre-norm layers of `width` features and `heads` heads."""

    def __init__(self, positions: int, codes: int, width: int, layers: int, heads: int) -> None:
        super().__init__()
        self.start = nn.Parameter(torch.zeros(1, 1, width))
        self.embed = nn.Embedding(codes, width)
        self.position = nn.Parameter(0.02 * torch.randn(positions, width))
        layer = nn.TransformerEncoderLayer(
            width, heads, 4 * width, dropout=0.0, batch_first=True, norm_first=True
        )
        self.body = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.out = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, codes))
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(positions))

    mask: Tensor

    def logits(self, indices: Tensor) -> Tensor:
        """Logits of p(k_i | k_<i) at every position: (B, P) -> (B, P, K). Position i
        reads only indices[:, :i]."""
        before = self.embed(indices[:, :-1])
        inputs = torch.cat([self.start.expand(len(indices), 1, -1), before], dim=1)
        hidden = self.body(inputs + self.position, mask=self.mask, is_causal=True)
        logits: Tensor = self.out(hidden)
        return logits

    def log_prob(self, indices: Tensor) -> Tensor:
        """log p(k) of index sequences (B, P) -> (B,), in nats."""
        logits = self.logits(indices)
        return -F.cross_entropy(logits.transpose(1, 2), indices, reduction="none").sum(1)


class CodePriorSampler(NetworkSampler):
    """A causal transformer (`layers` x `width`, `heads` heads) fitted with `steps` Adam
    steps of batch 256 at rate `lr` to the codes of `n_fit` training images."""

    name = "code_prior"
    fits_on = "codes"

    def __init__(
        self,
        width: PositiveInt = 128,
        layers: PositiveInt = 2,
        heads: PositiveInt = 4,
        steps: PositiveInt = 3000,
        lr: Positive = 1e-3,
        n_fit: PositiveInt = 10000,
        seed: Seed = 0,
    ) -> None:
        super().__init__(steps, lr, n_fit, seed)
        if int(width) % int(heads):
            raise ConfigError(
                f"sampler.width ({width}) must be a multiple of sampler.heads ({heads}): "
                f"use e.g. sampler.width={int(heads) * max(1, int(width) // int(heads))}"
            )
        self.width, self.layers, self.heads = int(width), int(layers), int(heads)
        self._codes = 0

    def check_model(self, model: Any) -> None:
        quantiser = getattr(model, "quantiser", None)
        if quantiser is None:
            raise ConfigError(
                "sampler=code_prior learns a prior over a VQ-VAE's codes, and this model "
                "has none: use it with a checkpoint trained with latent=vq objective=vq, "
                "or sampler=prior, gmm, two_stage or maf"
            )
        self._codes = int(quantiser.codes)

    def build(self, dim: int) -> nn.Module:
        return CausalCodeModel(dim, self._codes, self.width, self.layers, self.heads)

    def fit(self, latents: Tensor) -> None:
        network: Any = self._built(latents.shape[1])
        held_out = max(1, len(latents) // 10)
        fitted, checked = latents[:-held_out], latents[-held_out:]
        best: dict[str, Any] = {"nll": float("inf"), "state": None}

        def keep_the_best() -> None:
            network.eval()
            with torch.no_grad():
                nll = float(-network.log_prob(checked).mean())
            network.train()
            if nll < best["nll"]:
                best["nll"] = nll
                best["state"] = {k: v.clone() for k, v in network.state_dict().items()}

        fit_density(
            network,
            lambda z: self.loss(network, z),
            fitted,
            self.steps,
            self.lr,
            self.seed,
            every_100=keep_the_best,
        )
        network.load_state_dict(best["state"])
        log.info("code prior: held-out −log p(k) %.2f nats at its best", best["nll"])
        self._network = network.eval()

    def loss(self, network: Any, latents: Tensor) -> Tensor:
        nll: Tensor = -network.log_prob(latents).mean()
        return nll

    @torch.no_grad()
    def sample(
        self, model: Any, n: int, temperature: float = 1.0, generator: torch.Generator | None = None
    ) -> Tensor:
        """`n` latents (n, latent_dim): codes drawn position by position, looked up in
        the model's codebook."""
        network = self.ready()
        indices = torch.zeros(n, self._dim, dtype=torch.long)
        for i in range(self._dim):
            logits = network.logits(indices)[:, i] / max(temperature, 1e-6)
            indices[:, i] = torch.multinomial(logits.softmax(-1), 1, generator=generator)[:, 0]
        device = model.quantiser.codebook.device
        z: Tensor = model.quantiser.lookup(indices.to(device))
        return z.cpu()

    @torch.no_grad()
    def code_nll(self, indices: Tensor) -> Tensor:
        """−log p(k) of index sequences (B, P) in nats: (B,)."""
        nll: Tensor = -self.ready().log_prob(indices.cpu())
        return nll

    def state(self) -> dict[str, Any]:
        return {**super().state(), "codes": self._codes}

    def load_state(self, state: dict[str, Any]) -> None:
        self._codes = int(state["codes"])
        super().load_state(state)
