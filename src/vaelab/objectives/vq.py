"""The VQ-VAE's loss (van den Oord et al. 2017): reconstruction + β · commitment.

    loss = −log p(x|z_q) + β ‖z_e − sg(z_q)‖²

The paper's third term, the codebook loss ‖sg(z_e) − z_q‖², is replaced by the
codebook's moving-average updates (their Appendix A.1; vaelab.models.quantise), which
move each code to the mean of the vectors assigned to it without a gradient. The KL to
the uniform prior is the constant positions · log K and is left out of the loss (it is
in `kl` and `nelbo`, as the model logs them). Needs `latent=vq`.

Logged: β, the batch's `commitment`, codebook `perplexity`, the share of `codes_used`
and the dead codes restarted (`code_restarts`).
"""

from __future__ import annotations

from typing import ClassVar

from vaelab.config.constraints import NonNegative
from vaelab.objectives.base import LatentBatch, Objective, ObjectiveOutput


class VQ(Objective):
    """recon + β · commitment (β = 0.25 in the paper)."""

    terms = frozenset({"beta", "commitment", "perplexity", "codes_used", "code_restarts"})
    needs_quantised: ClassVar[bool] = True

    def __init__(self, beta: NonNegative = 0.25) -> None:
        super().__init__()
        self.beta = float(beta)

    def forward(self, batch: LatentBatch) -> ObjectiveOutput:
        quantised = batch.quantised
        if quantised is None:
            raise ValueError("objective=vq needs a quantised batch (latent=vq)")
        commitment = quantised.commitment.mean()
        loss = batch.recon_mean + self.beta * commitment
        return ObjectiveOutput(
            loss,
            {
                "beta": self.beta,
                "commitment": commitment.detach(),
                "perplexity": quantised.perplexity,
                "codes_used": quantised.codes_used,
                "code_restarts": quantised.restarts,
            },
        )
