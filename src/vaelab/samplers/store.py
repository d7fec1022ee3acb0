"""Fitted samplers on disk, beside the checkpoint they were fitted for:
`<checkpoint folder>/samplers/<checkpoint stem>-<sampler>.pt`.

The file holds the sampler's settings, the digest of the model weights it was fitted
to, what it fitted, and the digest of its own tensors (`vaelab.runs.checkpoints.
content_digest`, as checkpoints carry). It is reused when its settings and the weights
digest match and its own digest checks; otherwise it is fitted again and rewritten
(a damaged file is reported as one warning line and replaced, never trusted).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from vaelab.runs.atomic import atomic_path
from vaelab.runs.checkpoints import CHECKSUM_KEY, content_digest
from vaelab.samplers.base import FittedSampler, LatentSampler

log = logging.getLogger(__name__)

#: The version of the file's layout.
FORMAT = 1


def sampler_path(checkpoint: Path, sampler: LatentSampler) -> Path:
    """Where the fit of `sampler` for `checkpoint` is kept."""
    return checkpoint.parent / "samplers" / f"{checkpoint.stem}-{sampler.name}.pt"


def weights_digest(model: torch.nn.Module) -> str:
    """The digest of a model's weights: which model a fit belongs to."""
    return content_digest({k: v for k, v in model.state_dict().items()})


def _read(path: Path) -> dict[str, Any] | None:
    """The saved fit at `path` if it is intact, else None (with a warning if damaged)."""
    if not path.exists():
        return None
    try:
        saved: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
        intact = saved.get(CHECKSUM_KEY) == content_digest(saved)
    except Exception as exc:  # any unreadable file is refitted, whatever the reader raised
        log.warning(
            "sampler file %s is unreadable (%s); fitting it again", path, type(exc).__name__
        )
        return None
    if not intact:
        log.warning("sampler file %s does not match its checksum; fitting it again", path)
        return None
    return saved


def load_or_fit(
    sampler: LatentSampler, model: Any, checkpoint: Path, training_latents: Any
) -> tuple[LatentSampler, str]:
    """`sampler` ready to draw, and how: `prior` (nothing to fit), `reused` (restored
    from its file) or `fitted` (fitted to `training_latents(sampler)` now, and saved)."""
    if not isinstance(sampler, FittedSampler):
        return sampler, "prior"
    path = sampler_path(checkpoint, sampler)
    weights = weights_digest(model)
    saved = _read(path)
    if (
        saved is not None
        and saved["weights"] == weights
        and saved["settings"] == sampler.settings()
    ):
        sampler.load_state(saved["state"])
        log.info("sampler %s: reusing %s", sampler.name, path)
        return sampler, "reused"
    latents: Tensor = training_latents(sampler)
    sampler.fit(latents)
    record: dict[str, Any] = {
        "format": FORMAT,
        "sampler": sampler.name,
        "settings": sampler.settings(),
        "weights": weights,
        "n_fit": len(latents),
        "state": sampler.state(),
    }
    record[CHECKSUM_KEY] = content_digest(record)
    with atomic_path(path, what="sampler file") as tmp:
        torch.save(record, tmp)
    log.info(
        "sampler %s: fitted to %d training latents, saved to %s", sampler.name, len(latents), path
    )
    return sampler, "fitted"
