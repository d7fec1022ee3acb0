"""Observation models p(x|z): modules that turn decoder output into a distribution.

Each likelihood says how many decoder output channels it needs per data channel
(`params_per_channel`) and returns a `torch.distributions.Distribution` over one whole
example (event shape (C, H, W)), so `log_prob(x)` is the log-likelihood of an image in
nats, summed over every dimension. The VAE never writes a loss with a sign to remember.

One module a likelihood: `base` (the `Likelihood` interface), `bernoulli`, `gaussian`,
`discretized_logistic`. A new one is a module of its own here with a config in
conf/likelihood/ naming it (`_target_: vaelab.likelihoods.<module>.<Class>`). The
shipped classes are importable from this package too, as the configs and older
checkpoints name them (`vaelab.likelihoods.BernoulliLikelihood`).
"""

from vaelab.likelihoods.base import Likelihood
from vaelab.likelihoods.bernoulli import BernoulliLikelihood
from vaelab.likelihoods.discretized_logistic import (
    DiscretizedLogistic,
    DiscretizedLogisticLikelihood,
)
from vaelab.likelihoods.gaussian import GaussianLikelihood

__all__ = [
    "BernoulliLikelihood",
    "DiscretizedLogistic",
    "DiscretizedLogisticLikelihood",
    "GaussianLikelihood",
    "Likelihood",
]
