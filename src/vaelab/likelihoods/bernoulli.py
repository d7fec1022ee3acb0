"""Bernoulli p(x|z) for binary images: one logit per pixel."""

from __future__ import annotations

from torch import Tensor, nn
from torch.distributions import Bernoulli, Distribution

from vaelab.likelihoods.base import Likelihood


class BernoulliLikelihood(Likelihood):
    """Pixels in [0, 1] as Bernoulli probabilities; exact for binary data.

    On grey-level data in [0, 1] `log_prob` is the usual binary cross-entropy, not a
    normalised likelihood; it is allowed because it is the field's common baseline.
    """

    name = "bernoulli"

    def base(self, params: Tensor) -> Distribution:
        # validate_args=False: grey-level targets are outside Bernoulli's {0, 1} support.
        return Bernoulli(logits=params, validate_args=False)

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        # Bernoulli(logits).log_prob(x) is exactly −BCE-with-logits, summed per image.
        bce = nn.functional.binary_cross_entropy_with_logits(params, x, reduction="none")
        return -bce.flatten(1).sum(1)

    def discrete_levels(self) -> int | None:
        return 2
