"""The plain loop that fits a sampler's network to latents: minibatches of 256 drawn with
a seeded generator, Adam, a fixed number of steps (the latents are a few thousand
vectors of tens of numbers: no Trainer, no checkpoints)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn


def fit_density(
    module: nn.Module,
    loss: Callable[[Tensor], Tensor],
    data: Tensor,
    steps: int,
    lr: float,
    seed: int,
    batch_size: int = 256,
) -> list[float]:
    """Minimise `loss(batch)` over minibatches of `data` for `steps` Adam steps; return the
    loss of every 100th step (for the log)."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(module.parameters(), lr=lr)
    module.train()
    history = []
    for step in range(steps):
        index = torch.randint(len(data), (min(batch_size, len(data)),), generator=generator)
        value = loss(data[index])
        optimizer.zero_grad(set_to_none=True)
        value.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        if step % 100 == 0 or step == steps - 1:
            history.append(float(value.detach()))
    module.eval()
    return history
