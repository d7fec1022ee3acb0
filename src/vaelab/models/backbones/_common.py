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


def check_fits(in_shape: tuple[int, int, int], n_layers: int, what: str) -> list[tuple[int, int]]:
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
