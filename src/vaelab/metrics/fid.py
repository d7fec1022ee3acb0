"""Sample quality as the field reports it: the Fréchet Inception distance (FID, Heusel et
al. 2017) and the kernel Inception distance (KID, Bińkowski et al. 2018), computed by
torchmetrics' `FrechetInceptionDistance` and `KernelInceptionDistance` on the features
of torch-fidelity's Inception-v3 (the network and weights FID was defined with).

The weights are a file, checksummed, kept in the data root (`inception_weights_path`):
they are fetched where there is network (`fetch_inception_weights`) and never silently.
Where the file or torch-fidelity is missing, `inception_features` raises one line that
names the file, its checksum and where to put it; `src/eval.py` then says why it
reports no FID. `sample_quality` itself takes any feature extractor, which is how the
tests check the computation (against the Fréchet distance of two Gaussians).

The number depends on the sample count (FID is biased upwards for small counts): it is
always reported beside the count it was computed on.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from vaelab.errors import DataError

#: torch-fidelity's Inception-v3 weights (converted from the TensorFlow graph FID was
#: defined with): file name, the leading hex digits of its SHA-256 (torch.hub's
#: convention, written into the name), and where it is published.
INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_SHA256_PREFIX = "6726825d"
INCEPTION_URL = (
    "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/" + INCEPTION_FILE
)
#: The feature layer: the 2048-dimensional pool features.
FEATURES = "2048"


def inception_weights_path(data_root: str | Path) -> Path:
    """Where the Inception weights live: `<data root>/inception/<file>`."""
    return Path(data_root) / "inception" / INCEPTION_FILE


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_inception_weights(path: Path) -> None:
    """Raise `DataError` (one line: the file, its checksum, where it comes from and
    where to put it) unless `path` holds the Inception weights."""
    where = (
        f"download {INCEPTION_URL} (SHA-256 starting {INCEPTION_SHA256_PREFIX}) to {path}, "
        "or set eval.sample_quality.fid=false"
    )
    if not path.is_file():
        raise DataError(f"FID/KID need the Inception weights {path.name}, not found: {where}")
    if not _sha256(path).startswith(INCEPTION_SHA256_PREFIX):
        raise DataError(f"{path} is not the Inception weights file (checksum differs): {where}")


def fetch_inception_weights(path: Path) -> Path:
    """Download the weights to `path`, checked against the checksum in their name
    (torch.hub's `hash_prefix`); a failed or mismatching download leaves nothing."""
    from torch.hub import download_url_to_file

    path.parent.mkdir(parents=True, exist_ok=True)
    download_url_to_file(INCEPTION_URL, str(path), hash_prefix=INCEPTION_SHA256_PREFIX)
    return path


class InceptionFeatures(nn.Module):
    """Images in [0, 1] (N, C, H, W; 1 or 3 channels) -> Inception-v3 pool features
    (N, 2048), from the weights file at `path` (torch-fidelity's network: it resizes
    to 299 × 299 itself, from uint8 RGB)."""

    num_features = 2048

    def __init__(self, path: Path) -> None:
        super().__init__()
        check_inception_weights(path)
        try:
            from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
        except ImportError:
            raise DataError(
                "FID/KID need torch-fidelity (pip install 'vaelab[fid]'), which is not "
                "installed: install it, or set eval.sample_quality.fid=false"
            ) from None
        self.network = FeatureExtractorInceptionV3(
            "inception-v3-compat", [FEATURES], feature_extractor_weights_path=str(path)
        )

    def forward(self, images: Tensor) -> Tensor:
        rgb = images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images
        as_bytes = (rgb.clamp(0, 1) * 255).round().to(torch.uint8)
        features: Tensor = self.network(as_bytes)[0]
        return features.reshape(len(images), -1)


def inception_features(data_root: str | Path) -> InceptionFeatures:
    """The Inception feature extractor, or one line saying what is missing."""
    return InceptionFeatures(inception_weights_path(data_root))


class _Precomputed(nn.Identity):
    """The features, already extracted, handed to torchmetrics as its "network": each
    image goes through the (costly) extractor once for FID and KID together."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features


@torch.no_grad()
def sample_quality(
    real: Iterable[Tensor],
    generated: Iterable[Tensor],
    features: nn.Module,
    kid_subset_size: int = 1000,
) -> dict[str, Any]:
    """FID and KID (mean and standard deviation over 100 subsets) between batches of
    real and generated images in [0, 1], on `features` (a module with `num_features`);
    with the counts they were computed on."""
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    extracted: dict[bool, list[Tensor]] = {True: [], False: []}
    for is_real, batches in ((True, real), (False, generated)):
        for images in batches:
            extracted[is_real].append(features(images.float()).double())
    width = int(getattr(features, "num_features"))  # noqa: B009  (an nn.Module attribute)
    n_real, n_generated = (sum(len(f) for f in extracted[k]) for k in (True, False))
    subset = min(kid_subset_size, n_real, n_generated)
    fid = FrechetInceptionDistance(feature=_Precomputed(width)).double()
    with warnings.catch_warnings():
        # It keeps every feature vector, which is what KID's subsets need: its warning
        # about the memory says what the caller chose with the sample count.
        warnings.filterwarnings("ignore", message=".*will save all extracted features")
        kid = KernelInceptionDistance(feature=_Precomputed(width), subset_size=subset)
    for is_real, parts in extracted.items():
        for part in parts:
            fid.update(part, real=is_real)
            kid.update(part, real=is_real)
    kid_mean, kid_std = kid.compute()
    return {
        "fid": float(fid.compute()),
        "kid_mean": float(kid_mean),
        "kid_std": float(kid_std),
        "n_real": n_real,
        "n_generated": n_generated,
        "kid_subset_size": subset,
    }
