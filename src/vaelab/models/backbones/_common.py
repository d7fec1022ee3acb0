"""Shape arithmetic and activation lookup shared by the backbones."""

from __future__ import annotations

from torch import nn

from vaelab.errors import ConfigError

# Every down-sampling layer is a k=4, s=2, p=1 convolution: it halves even sizes and
# maps odd size s to (s-1)//2 (7 -> 3); the matching transposed convolution gets the
# exact size back with output_padding in {0, 1}, so any H x W round-trips.
KERNEL, STRIDE, PADDING = 4, 2, 1


def downsampled_sizes(size: int, n_layers: int) -> list[int]:
    """Spatial sizes after 0..n_layers stride-2 convolutions, starting at `size`."""
    sizes = [size]
    for _ in range(n_layers):
        sizes.append((sizes[-1] + 2 * PADDING - KERNEL) // STRIDE + 1)
    return sizes


def check_fits(in_shape: tuple[int, ...], n_layers: int, what: str) -> list[tuple[int, int]]:
    """Sizes (h, w) at each depth; a `ConfigError` if the input is too small for the depth."""
    _, height, width = in_shape
    hs, ws = downsampled_sizes(height, n_layers), downsampled_sizes(width, n_layers)
    if min(hs[-1], ws[-1]) < 1:
        deepest = max(i for i, (h, w) in enumerate(zip(hs, ws, strict=True)) if min(h, w) >= 1)
        raise ConfigError(
            f"{what} has {n_layers} stride-2 layers, too many for {height}x{width} inputs; "
            f"give it at most {deepest} (e.g. a shorter {what}.channels list)"
        )
    return list(zip(hs, ws, strict=True))


def output_padding(target: int, smaller: int) -> int:
    """output_padding that makes a stride-2 transposed conv map `smaller` to `target`."""
    return target - ((smaller - 1) * STRIDE - 2 * PADDING + KERNEL)


def make_activation(name: str) -> nn.Module:
    """A new activation module from its `torch.nn` class name (ReLU, SiLU, GELU, ...)."""
    cls = getattr(nn, name, None)
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ConfigError(
            f"activation {name!r} is not a torch.nn module; use e.g. ReLU, SiLU, GELU, ELU"
        )
    return cls()


def flatten_to_features(
    channels: int, size: tuple[int, int], fc_dim: int, activation: str
) -> tuple[list[nn.Module], int]:
    """An encoder's tail: flatten the deepest feature map, then an optional dense layer.

    Returns the layers and the number of features they output.
    """
    flat = channels * size[0] * size[1]
    layers: list[nn.Module] = [nn.Flatten()]
    if fc_dim:
        layers += [nn.Linear(flat, fc_dim), make_activation(activation)]
    return layers, int(fc_dim or flat)


def latent_to_feature_map(
    latent_dim: int, fc_dim: int, deepest: tuple[int, int, int], activation: str
) -> list[nn.Module]:
    """A decoder's head: z through an optional dense layer to the deepest feature map."""
    layers: list[nn.Module] = []
    n_in = latent_dim
    if fc_dim:
        layers += [nn.Linear(latent_dim, fc_dim), make_activation(activation)]
        n_in = fc_dim
    n_out = deepest[0] * deepest[1] * deepest[2]
    return [*layers, nn.Linear(n_in, n_out), make_activation(activation), nn.Unflatten(1, deepest)]


def upsample(c_in: int, c_out: int, target: tuple[int, int], smaller: tuple[int, int]) -> nn.Module:
    """A stride-2 transposed convolution from `smaller` (h, w) exactly to `target` (h, w)."""
    pad = (output_padding(target[0], smaller[0]), output_padding(target[1], smaller[1]))
    return nn.ConvTranspose2d(c_in, c_out, KERNEL, STRIDE, PADDING, pad)
