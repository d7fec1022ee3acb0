"""The one label API of every data module whose examples carry labels.

A conditional VAE (`conditional=true`, or `conditional=[name, ...]`) reads labels
beside each batch. A data module with labels has a `label_space()`, the labels' names
and sizes (levels per label), and `split_labels(split)`, the label indices (N, K) of
every example of a split, row i for example i in the order the unshuffled loaders
serve. Three kinds of data have them:

- class datasets (MNIST, Fashion-MNIST, CIFAR-10, scikit-learn's digits): one label,
  `class`, with the class names as its level names;
- CelebA: its 40 binary attributes (`Smiling`, `Male`, ...), 0 for absent;
- datasets with known factors (dSprites, shapes, 3dshapes, MPI3D, smallNORB, Cars3D):
  every factor is a label (`shape`, `scale`, ...), so `conditional=[shape]` picks one.

Models and apps know only this API (and `select`, which resolves what `conditional`
names), never a dataset by name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from vaelab.errors import ConfigError


@dataclass(frozen=True)
class LabelSpace:
    """The labels of a dataset.

    Attributes:
        names: one name per label, in column order of `split_labels`.
        sizes: levels per label; label indices run over 0..size-1.
        level_names: for a label whose levels have names (a class's), those names.
    """

    names: tuple[str, ...]
    sizes: tuple[int, ...]
    level_names: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.names) != len(self.sizes) or not self.sizes:
            raise ValueError(f"label names {self.names} and sizes {self.sizes} must pair up")

    def as_sizes(self) -> dict[str, int]:
        """Levels per label by name, in column order (what a model is built with)."""
        return dict(zip(self.names, self.sizes, strict=True))

    def level_name(self, label: str, level: int) -> str:
        """What level `level` of `label` is called: its name, or `label=level`."""
        names = self.level_names.get(label)
        return names[level] if names is not None else f"{label}={level}"

    def select(self, chosen: bool | str | Sequence[str], data: str = "the data") -> dict[str, int]:
        """The labels `conditional` names (`True`: all of them; a name: that one) with
        their sizes, in the order given; an unknown name is refused in one line that
        lists the known."""
        if chosen is True:
            return self.as_sizes()
        if isinstance(chosen, str):  # `conditional=shape`: one label
            chosen = [chosen]
        if isinstance(chosen, bool) or not chosen:
            raise ConfigError("conditional names no label: use conditional=true or a list")
        sizes = self.as_sizes()
        unknown = [name for name in chosen if name not in sizes]
        if unknown:
            known = ",".join(self.names)
            raise ConfigError(
                f"{data} has no label {unknown[0]!r}; its labels are [{known}]: use "
                f"conditional=[{self.names[0]}] (any of them) or conditional=true (all)"
            )
        if len(set(chosen)) != len(chosen):
            raise ConfigError(f"conditional={list(chosen)} names a label twice: name each once")
        return {name: sizes[name] for name in chosen}

    def columns(self, chosen: Sequence[str]) -> list[int]:
        """The columns of `split_labels` that hold the labels `chosen`, in that order."""
        return [self.names.index(name) for name in chosen]


def one_hot(labels: Tensor, sizes: Sequence[int]) -> Tensor:
    """Label indices (B, K) as the concatenation of each label's one-hot vector
    (B, Σ sizes), float; an index outside its label's levels is refused in one line."""
    if labels.dim() != 2 or labels.shape[1] != len(sizes):
        raise ValueError(f"expected label indices (B, {len(sizes)}), got {tuple(labels.shape)}")
    bound = torch.tensor(list(sizes), device=labels.device)
    if labels.numel() and ((labels < 0) | (labels >= bound)).any():
        raise ValueError(f"label indices must lie in [0, sizes) = {list(sizes)}")
    parts = [torch.nn.functional.one_hot(labels[:, k].long(), size) for k, size in enumerate(sizes)]
    return torch.cat(parts, dim=1).float()


def no_labels_error(data: str) -> ConfigError:
    """The one line a conditional model on data without labels gets."""
    return ConfigError(
        f"conditional needs labels, and {data} has none: use conditional=false, or data "
        "with labels (mnist, fashion_mnist, cifar10, digits, celeba, or a dataset with "
        "known factors: shapes, dsprites, shapes3d, mpi3d, smallnorb, cars3d)"
    )
