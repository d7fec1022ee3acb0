"""Standard normal noise fixed per example: the one source of the draws that make
validation, test and IWAE numbers independent of batch size, DDP rank count and the
global RNG.

`per_example_noise(index, dim, seed)` is a stream per example, seeded from (seed,
example index): its j-th draw depends only on the index and on j, never on which other
examples share the batch or how many draws a caller takes at a time (it draws fixed
blocks of `NOISE_BLOCK` and hands them out in any chunks). `example_draw` is its
first draw, the one posterior sample of a validation step.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

#: Draws the next `n` standard normal samples per example: (B, n, D).
NoiseStream = Callable[[int], Tensor]


#: Samples each example's stream draws at a time. Fixed, so that the values do not depend
#: on how many samples a caller asks for at once (torch's CPU normal kernel fills a long
#: draw in vectorised blocks: randn(8) then randn(8) is not randn(16)).
NOISE_BLOCK = 64


def per_example_noise(index: Tensor, dim: int, seed: int = 0) -> NoiseStream:
    """Standard normal streams, one per example, seeded from (seed, example index).

    Each example's j-th draw depends only on its index and on j: never on which other
    examples share its batch, its DDP rank, or how many draws a caller takes at a time
    (the stream draws fixed blocks of `NOISE_BLOCK` and hands them out in any chunks).
    So an evaluation gives the same number for any batch size, `max_decoded` or number
    of processes. Seeds are seed * 1_000_003 + index; memory is one block per example.
    """
    generators = [torch.Generator().manual_seed(seed * 1_000_003 + i) for i in index.tolist()]
    buffered = torch.zeros(len(generators), 0, dim)

    def draw(n: int) -> Tensor:
        nonlocal buffered
        while buffered.shape[1] < n:
            block = [torch.randn(NOISE_BLOCK, dim, generator=g) for g in generators]
            fresh = torch.stack(block) if block else torch.zeros(0, NOISE_BLOCK, dim)
            buffered = torch.cat([buffered, fresh], dim=1)
        taken, buffered = buffered[:, :n], buffered[:, n:]
        return taken

    return draw


def example_draw(index: Tensor, dim: int, seed: int = 0) -> Tensor:
    """Each example's first draw of its stream: (B, dim)."""
    return per_example_noise(index, dim, seed)(1)[:, 0]
