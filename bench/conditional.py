"""A conditional VAE (`conditional=true`: q(z|x, y) and p(x|z, y), y the class) beside
the unconditional model on real data: dynamically binarised Fashion-MNIST (Debian's
files), the MLP backbones and budget of bench/hierarchy.py. Run it alone.

    .venv/bin/python bench/conditional.py [--epochs 10] [--seeds 0,1,2] [--k 1000]

Recorded per run (bench/variant_study.py: train, then eval with `eval.iwae_k=k` on the
whole test split): the IWAE bound −L_k, the −ELBO, the KL and the active units. The
conditional model's bound is of −log p(x|y), the unconditional one's of −log p(x):
they differ by at most log 10 nats plus what the models learn differently, and the
docs say so. For each conditional run also the class agreement of its samples: 100
prior draws per class decoded with that class, each labelled by a classifier (an MLP
trained here on Fashion-MNIST's grey training images; its accuracy on the test images
is recorded beside it), and the share labelled as the class they were drawn for.
Writes bench/results/conditional.json and docs/images/conditional.png: the first
seed's class grid as `src/generate.py` draws it (a row per class, one prior draw down
each column).
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from variant_study import FASHION_MLP, Study

#: prior draws per class whose decoded images the classifier labels
DRAWS_PER_CLASS = 100


@functools.cache
def classifier() -> tuple[Any, float]:
    """An MLP classifier of Fashion-MNIST (784-256-10, 5 epochs of Adam on the grey
    training images, seed 0) and its accuracy on the 10,000 test images."""
    import torch
    from torch import nn

    from vaelab.data.mnist import FashionMNISTDataModule

    data = FashionMNISTDataModule(binarize="none")  # the data root: $VAELAB_DATA
    data.setup()
    x_train, y_train = data.labelled_examples(10**6, ["class"], split="train")
    x_test, y_test = data.labelled_examples(10**6, ["class"], split="test")
    assert y_train is not None and y_test is not None
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(5):
        for index in torch.randperm(len(x_train)).split(128):
            loss = nn.functional.cross_entropy(net(x_train[index]), y_train[index, 0])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    net.eval()
    with torch.no_grad():
        accuracy = float((net(x_test).argmax(1) == y_test[:, 0]).float().mean())
    return net, accuracy


def class_agreement(variant: str, checkpoint: Path) -> dict[str, Any]:
    """A conditional checkpoint's share of samples the classifier labels as the class
    they were drawn for (overall and for the worst class); nothing for another model."""
    import torch

    from vaelab.runs.trained import load_vae

    model, _ = load_vae(checkpoint)
    if not model.conditional:
        return {}
    net, real_accuracy = classifier()
    generator = torch.Generator().manual_seed(0)
    classes = torch.arange(10).repeat_interleave(DRAWS_PER_CLASS)
    with torch.no_grad():
        images = model.sample(len(classes), generator=generator, labels=classes[:, None])
        agree = (net(images).argmax(1) == classes).float().view(10, DRAWS_PER_CLASS).mean(1)
    return {
        "sample_class_agreement": float(agree.mean()),
        "worst_class_agreement": float(agree.min()),
        "classifier_test_accuracy": real_accuracy,
    }


STUDY = Study(
    name="conditional",
    variants={"unconditional": [], "conditional": ["conditional=true"]},
    shared=FASHION_MLP,
    headline=("nll_iwae", "nelbo", "kl", "active_units"),
    measure=class_agreement,
)


def plot(table: dict[str, dict[str, Any]], k: int, path: Path) -> None:
    """The first conditional seed's class grid, as generate.py draws it."""
    STUDY.generated_picture("conditional", "class_grid.png", path, "nrow=10")


if __name__ == "__main__":
    STUDY.main(__doc__ or "", plot)
