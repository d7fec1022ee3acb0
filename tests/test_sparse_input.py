"""The MLP encoder's first layer gives what `nn.Linear` gives, on both of its paths."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vaelab.models.backbones import MLPEncoder
from vaelab.models.backbones.sparse_input import SparseInputLinear

IN, OUT = 256, 24


def sprites(batch: int = 6, ink: float = 0.04, seed: int = 1) -> torch.Tensor:
    """Mostly blank inputs with a blank first image and a grey level here and there."""
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(batch, IN, generator=g) < ink).float()
    x[2:4] *= torch.rand(2, IN, generator=g)  # values other than 1 weight their rows
    x[0] = 0
    return x


def graph_ops(out: torch.Tensor) -> set[str]:
    """The names of the autograd nodes that produced `out`."""
    seen, stack = set(), [out.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        stack += [n for n, _ in node.next_functions]
    return {type(n).__name__ for n in seen}


def dense_reference(layer: SparseInputLinear, x: torch.Tensor, grad_out: torch.Tensor):
    """Output and parameter gradients of F.linear with the layer's weights, by hand."""
    weight = layer.weight_rows.detach().t().clone().requires_grad_()
    bias = layer.bias.detach().clone().requires_grad_()
    out = F.linear(x, weight, bias)
    out.backward(grad_out)
    return out.detach(), weight.grad.t(), bias.grad


@pytest.mark.parametrize(
    ("max_density", "path"), [(0.08, "EmbeddingBagBackward0"), (0.0, "AddmmBackward0")]
)
def test_both_paths_match_a_dense_linear_layer(max_density: float, path: str) -> None:
    torch.manual_seed(0)
    layer = SparseInputLinear(IN, OUT, max_density=max_density)
    x = sprites()
    grad_out = torch.randn(x.shape[0], OUT)

    out = layer(x)
    out.backward(grad_out)

    assert path in graph_ops(out)
    want, want_weight_grad, want_bias_grad = dense_reference(layer, x, grad_out)
    torch.testing.assert_close(out, want, rtol=0, atol=1e-5)
    torch.testing.assert_close(out[0], layer.bias.detach())  # a blank image: the bias
    torch.testing.assert_close(layer.weight_rows.grad, want_weight_grad, rtol=0, atol=1e-5)
    torch.testing.assert_close(layer.bias.grad, want_bias_grad, rtol=0, atol=1e-5)
    # Rows of pixels no image lit get no gradient.
    unlit = (x == 0).all(0)
    assert unlit.any() and layer.weight_rows.grad[unlit].abs().max() == 0


def test_a_dense_batch_and_an_input_that_needs_its_gradient_take_the_product() -> None:
    torch.manual_seed(0)
    layer = SparseInputLinear(IN, OUT, max_density=0.08)
    dense = sprites(ink=0.5)
    assert "EmbeddingBagBackward0" not in graph_ops(layer(dense))

    x = sprites().requires_grad_()
    out = layer(x)
    out.sum().backward()
    assert "EmbeddingBagBackward0" not in graph_ops(out)
    # d(sum of outputs)/dx_i is the sum of weight row i, zeros included.
    torch.testing.assert_close(x.grad, layer.weight_rows.detach().sum(1).expand_as(x))


def test_it_draws_the_weights_a_seeded_linear_layer_draws() -> None:
    torch.manual_seed(3)
    linear = torch.nn.Linear(IN, OUT)
    torch.manual_seed(3)
    layer = SparseInputLinear(IN, OUT)
    assert torch.equal(layer.weight_rows, linear.weight.detach().t())
    assert torch.equal(layer.bias, linear.bias.detach())


def test_an_encoder_state_dict_from_linear_layers_loads() -> None:
    """Checkpoints written before the first layer gathered (an `nn.Linear`, weight
    (out, in)) load into the encoder and give the same features."""
    torch.manual_seed(0)
    encoder = MLPEncoder(in_shape=(1, 16, 16), hidden=[OUT, 8])
    state = encoder.state_dict()
    old = {k: v for k, v in state.items() if k != "net.1.weight_rows"}
    old["net.1.weight"] = state["net.1.weight_rows"].t().contiguous()

    torch.manual_seed(1)
    loaded = MLPEncoder(in_shape=(1, 16, 16), hidden=[OUT, 8])
    loaded.load_state_dict(old)

    x = sprites().reshape(-1, 1, 16, 16)
    torch.testing.assert_close(loaded(x), encoder(x))
    assert "EmbeddingBagBackward0" in graph_ops(loaded(x))


def test_a_compiled_encoder_multiplies_without_breaking_its_graph() -> None:
    torch.manual_seed(0)
    encoder = MLPEncoder(in_shape=(1, 16, 16), hidden=[OUT, 8])
    x = sprites().reshape(-1, 1, 16, 16)
    # fullgraph=True raises at the first graph break (the gathered path would make one).
    compiled = torch.compile(encoder.forward, fullgraph=True)
    torch.testing.assert_close(compiled(x), encoder(x), atol=1e-5, rtol=0)
