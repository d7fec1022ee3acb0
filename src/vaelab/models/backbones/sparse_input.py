"""A first layer that skips the zeros of a mostly blank image.

Binary sprites (dSprites, the built-in shapes) are a few per cent ink: a dense
`x @ W.T` over a flattened 64x64 image multiplies 96 % of its terms by zero. Where a
batch is that sparse, the same product is the sum, per image, of the weight rows of its
lit pixels, each scaled by the pixel's value: `F.embedding_bag` computes exactly that,
forward and backward, with work in proportion to the ink instead of the image. On the
default experiment's batches (3.4 % ink) it takes a third to a half off the layer's
time (bench/step_profile.py). Denser batches (Fashion-MNIST is about half ink) take the
dense product, which BLAS does faster there; both paths give the same numbers up to
float rounding.

The weight is stored one row per input feature, (in_features, out_features), the
layout `embedding_bag` reads without a copy (through a transposed view it is several
times slower than the dense product); the dense path multiplies by it directly. A
state dict of the `nn.Linear` this layer replaces (`weight`, (out, in)) loads into it,
transposed.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from typing_extensions import override


class SparseInputLinear(nn.Module):
    """`nn.Linear(in_features, out_features)` for (B, in_features) inputs that are mostly
    zeros: gathers the weight rows of the non-zero inputs when at most `max_density` of
    a batch's entries are non-zero (on a CPU, uncompiled, and the input needs no
    gradient), else multiplies."""

    def __init__(self, in_features: int, out_features: int, max_density: float = 0.08) -> None:
        super().__init__()
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        self.max_density = float(max_density)
        self.weight_rows = nn.Parameter(torch.empty(self.in_features, self.out_features))
        self.bias = nn.Parameter(torch.empty(self.out_features))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """`nn.Linear`'s initialisation, drawn in its (out, in) shape from the same
        random stream: a seed gives this layer the weights it gives `nn.Linear`."""
        weight = torch.empty(self.out_features, self.in_features)
        nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
        bound = 1 / math.sqrt(self.in_features)
        with torch.no_grad():
            self.weight_rows.copy_(weight.t())
            nn.init.uniform_(self.bias, -bound, bound)

    @override
    def forward(self, x: Tensor) -> Tensor:
        # The gathered path has no gradient for the zero inputs, and it is measured on
        # CPUs only: on a GPU the dense product is cheap and counting the non-zeros
        # would make every step wait for the device. Under torch.compile its
        # data-dependent sizes would break the graph at every step.
        if (
            x.requires_grad
            or x.dim() != 2
            or x.device.type != "cpu"
            or torch.compiler.is_compiling()
        ):
            return self._dense(x)
        if int(torch.count_nonzero(x)) > self.max_density * x.numel():
            return self._dense(x)
        flat = x.reshape(-1)
        lit = flat.nonzero().squeeze(1)
        rows = torch.div(lit, self.in_features, rounding_mode="floor")
        counts = torch.bincount(rows, minlength=x.shape[0])
        offsets = torch.cumsum(counts, 0) - counts
        summed = F.embedding_bag(
            lit % self.in_features,
            self.weight_rows,
            offsets,
            mode="sum",
            per_sample_weights=flat[lit].to(self.weight_rows.dtype),
        )
        return summed + self.bias

    def _dense(self, x: Tensor) -> Tensor:
        if x.dim() == 2:
            return torch.addmm(self.bias, x, self.weight_rows)  # what nn.Linear calls
        return torch.matmul(x, self.weight_rows) + self.bias

    @override
    def _load_from_state_dict(
        self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any
    ) -> None:
        linear_weight = state_dict.pop(prefix + "weight", None)
        if linear_weight is not None and prefix + "weight_rows" not in state_dict:
            state_dict[prefix + "weight_rows"] = linear_weight.t()
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @override
    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"max_density={self.max_density}"
        )
