"""Latent samplers: where the latents of generated pictures come from, chosen with
`sampler=` in `src/generate.py` and `src/eval.py` (conf/sampler/).

- `prior`: the model's own prior p(z) (the default);
- `gmm`: a Gaussian mixture fitted to the training posterior means (Ghosh et al. 2020,
  "From variational to deterministic autoencoders": ex-post density estimation);
- `two_stage`: a second small VAE trained on the latents (Dai & Wipf 2019, "Diagnosing
  and enhancing VAE models");
- `maf`: a masked autoregressive flow fitted to the training posterior means;
- `code_prior`: a causal transformer over a VQ-VAE's code indices (van den Oord et al.
  2017's second stage).

A fitted sampler is written beside the checkpoint it was fitted for, with the digest of
that checkpoint's weights and its own checksum (`vaelab.samplers.store`), and reused
while both still match.
"""

from vaelab.samplers.base import FittedSampler, LatentSampler, PriorSampler
from vaelab.samplers.code_prior import CodePriorSampler
from vaelab.samplers.gmm import GaussianMixtureSampler
from vaelab.samplers.maf import FlowSampler
from vaelab.samplers.two_stage import TwoStageSampler

__all__ = [
    "CodePriorSampler",
    "FittedSampler",
    "FlowSampler",
    "GaussianMixtureSampler",
    "LatentSampler",
    "PriorSampler",
    "TwoStageSampler",
]
