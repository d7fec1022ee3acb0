"""Checkpoints that are never half-written, and one-line errors for bad ones.

Lightning writes a checkpoint straight to its final name, so a crash or a full disk
mid-write leaves a truncated `last.ckpt` where a good one used to be.
`AtomicCheckpointIO` writes through `vaelab.runs.atomic.atomic_path`: a temporary file in the
same folder, flushed to disk and renamed over the old one, so a reader sees the old file
or the new one, and a full disk is one line that keeps the last good checkpoint.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.plugins.io import TorchCheckpointIO
from typing_extensions import override

from vaelab.errors import CheckpointError
from vaelab.runs.atomic import atomic_path

if TYPE_CHECKING:
    from typing_extensions import Buffer  # (4.6+; the runtime requirement is 4.4)

log = logging.getLogger(__name__)

#: Keys every Lightning checkpoint of a `vaelab.models.VAE` has.
REQUIRED_KEYS = ("state_dict", "hyper_parameters")
#: Where a checkpoint written by vaelab keeps the digest of its own tensors.
CHECKSUM_KEY = "vaelab_checksum"
#: Set to 0 to load a checkpoint whose content does not match its checksum.
VERIFY_ENV = "VAELAB_VERIFY_CHECKPOINTS"


def content_digest(checkpoint: Any) -> str:
    """blake2b of every tensor in a checkpoint (its key path, dtype, shape and bytes),
    in a fixed order: damaged tensor data in a file that still unpickles changes it."""
    digest = hashlib.blake2b(digest_size=32)

    def visit(obj: Any, where: str) -> None:
        if isinstance(obj, torch.Tensor):
            data = obj.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy()
            digest.update(f"{where}|{obj.dtype}|{tuple(obj.shape)}|".encode())
            # an ndarray is a buffer; numpy's stubs say so for Python 3.12+ only
            digest.update(cast("Buffer", data))
        elif isinstance(obj, dict):
            for key in sorted(obj, key=str):
                if key != CHECKSUM_KEY:
                    visit(obj[key], f"{where}/{key}")
        elif isinstance(obj, list | tuple):
            for i, item in enumerate(obj):
                visit(item, f"{where}/{i}")

    visit(checkpoint, "")
    return digest.hexdigest()


def verify_checksum(checkpoint: dict[str, Any], path: Any = "") -> None:
    """Raise `CheckpointError` if the checkpoint's tensors do not match the checksum it
    was written with. Checkpoints without one (written by other tools, or before vaelab
    wrote checksums) are taken as they are: there is nothing to check them against."""
    saved = checkpoint.get(CHECKSUM_KEY)
    if saved is None or os.environ.get(VERIFY_ENV, "1") == "0":
        return
    if content_digest(checkpoint) != saved.get("blake2b"):
        where = f"{path} " if path else ""
        raise CheckpointError(
            f"checkpoint {where}is damaged: its tensors do not match the checksum written with "
            "it; use another one (e.g. <run folder>/checkpoints/best.ckpt, or resume=intact "
            f"for the run folder's newest intact one), or load it anyway with {VERIFY_ENV}=0"
        )


class AtomicCheckpointIO(TorchCheckpointIO):
    """TorchCheckpointIO with temp-file + fsync + rename writes."""

    @override
    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None
    ) -> None:
        path = Path(path)
        checkpoint = {**checkpoint, CHECKSUM_KEY: {"blake2b": content_digest(checkpoint)}}
        try:
            with (
                atomic_path(
                    path, what="checkpoint", needed=tensor_bytes(checkpoint), fsync=True
                ) as tmp,
                open(tmp, "wb") as f,
            ):
                torch.save(checkpoint, f)
        except OSError as exc:  # not a full disk (that is a DiskFullError): permissions, ...
            raise CheckpointError(
                f"could not write checkpoint {path}: {exc.strerror or exc}; the checkpoints "
                f"already in {path.parent} are intact (set paths.log_dir=...)"
            ) from exc


def tensor_bytes(obj: Any) -> int:
    """Bytes of the tensors in a (nested) checkpoint: about the size it takes on disk."""
    if isinstance(obj, torch.Tensor):
        return obj.nelement() * obj.element_size()
    if isinstance(obj, dict):
        return sum(tensor_bytes(v) for v in obj.values())
    if isinstance(obj, list | tuple):
        return sum(tensor_bytes(v) for v in obj)
    return 0


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a vaelab checkpoint on the CPU, or raise `CheckpointError` in one line."""
    path = Path(path)
    if not path.is_file():
        hint = _nearby_checkpoints(path)
        raise CheckpointError(f"no checkpoint at {path}{hint}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except (ImportError, AttributeError) as exc:
        # The pickle names a class from a module (or of a version) not installed here.
        missing = getattr(exc, "name", None) or first_line(exc)
        raise CheckpointError(
            f"{path} was saved with code that is not installed here ({type(exc).__name__}: "
            f"{missing}); install the package that wrote it, or use a checkpoint written "
            "by `python src/train.py`"
        ) from None
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError) as exc:
        raise CheckpointError(
            f"{path} is truncated or not a PyTorch checkpoint ({type(exc).__name__}); "
            "use a complete one, e.g. <run folder>/checkpoints/last.ckpt"
        ) from exc
    if not isinstance(checkpoint, dict) or any(k not in checkpoint for k in REQUIRED_KEYS):
        raise CheckpointError(
            f"{path} is not a vaelab checkpoint (no model hyperparameters in it); "
            "use one written by `python src/train.py`"
        )
    hparams = checkpoint["hyper_parameters"]
    if "data_shape" not in hparams or "latent_dim" not in hparams:
        raise CheckpointError(f"{path} is a Lightning checkpoint but not of a vaelab VAE")
    verify_checksum(checkpoint, path)
    return checkpoint


def newest_intact_checkpoint(folder: Path) -> tuple[Path, dict[str, Any]] | None:
    """The checkpoint in `folder` with the highest global step (the newest file among
    equals) that reads and passes its checksum, with its content; None if the folder
    has no checkpoint. A damaged one is passed over with one warning line; if every one
    is damaged, `CheckpointError` names them."""
    candidates = sorted(folder.glob("*.ckpt"), key=lambda p: p.stat().st_mtime, reverse=True)
    if not candidates:
        return None
    best: tuple[int, Path, dict[str, Any]] | None = None
    refused: list[str] = []
    for path in candidates:  # newest first, so a later one of equal step never wins
        try:
            checkpoint = read_checkpoint(path)
        except CheckpointError as exc:
            log.warning("resume=intact: passing over %s (%s)", path, exc)
            refused.append(path.name)
            continue
        step = int(checkpoint.get("global_step", 0))
        if best is None or step > best[0]:
            best = (step, path, checkpoint)
    if best is None:
        raise CheckpointError(
            f"no intact checkpoint in {folder} ({', '.join(refused)} damaged or unreadable); "
            "start a new run in another folder (hydra.run.dir=...)"
        )
    return best[1], best[2]


def check_data_shape(checkpoint: dict[str, Any], dims: Sequence[int], path: Any = "") -> None:
    """The data the checkpoint was trained on must have the shape of the data chosen now."""
    trained = tuple(checkpoint["hyper_parameters"]["data_shape"])
    if trained != tuple(dims):
        raise CheckpointError(
            f"checkpoint {path} was trained on {'x'.join(map(str, trained))} data but the "
            f"chosen data is {'x'.join(map(str, dims))}; pick the data it was trained on"
        )


#: Hyperparameters that fix the model's architecture; a checkpoint must agree on them.
ARCHITECTURE_KEYS = (
    "data_shape",
    "latent_dim",
    "encoder",
    "decoder",
    "likelihood",
    "prior",
    "posterior",
    "latent",
    "conditional",
    "label_sizes",
)
#: What a checkpoint written before `prior=`, `posterior=` and `latent=` existed was built with.
ARCHITECTURE_DEFAULTS: dict[str, dict[str, Any]] = {
    "prior": {"_target_": "vaelab.models.priors.StandardNormal"},
    "posterior": {"_target_": "vaelab.models.posteriors.GaussianPosterior"},
    "latent": {"_target_": "vaelab.models.hierarchy.GaussianLatent"},
}
#: ... and before `conditional=`: no labels (`label_sizes` then None, as `.get` gives).
UNCONDITIONAL = False


def check_same_model(checkpoint: dict[str, Any], hparams: Any, path: Any = "") -> None:
    """The config must build the model the checkpoint holds, to continue training it."""
    saved = checkpoint["hyper_parameters"]
    optimizers = [(h.get("optimizer") or {}).get("_target_") for h in (saved, hparams)]
    if all(optimizers) and optimizers[0] != optimizers[1]:
        raise CheckpointError(
            f"checkpoint {path} was trained with model.optimizer._target_={optimizers[0]}, "
            f"whose state does not fit {optimizers[1]}; continue with the checkpoint's "
            "optimiser (its settings, e.g. lr, may change), or start a new run"
        )
    schedulers = [(h.get("scheduler") or {}).get("_target_") for h in (saved, hparams)]
    if schedulers[0] != schedulers[1]:
        raise CheckpointError(
            f"checkpoint {path} was trained with model.scheduler="
            f"{schedulers[0] or 'null'}, and the config sets {schedulers[1] or 'null'}: a "
            "schedule's state cannot carry over; continue with the schedule the run was "
            "started with (its .hydra/overrides.yaml) or start a new run"
        )
    for key in ARCHITECTURE_KEYS:
        default = UNCONDITIONAL if key == "conditional" else ARCHITECTURE_DEFAULTS.get(key)
        held, built = (_plain(h.get(key, default)) for h in (saved, hparams))
        if held != built:
            raise CheckpointError(
                f"checkpoint {path} holds a model with {key}={held} but the config builds "
                f"{key}={built}; continue with the overrides the run was started with (its "
                ".hydra/overrides.yaml)"
            )


def _plain(value: Any) -> Any:
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True)
    if isinstance(value, tuple):
        return list(value)
    return value


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _nearby_checkpoints(path: Path) -> str:
    folder = path.parent
    found = sorted(p.name for p in folder.glob("*.ckpt")) if folder.is_dir() else []
    return f" (in {folder}: {', '.join(found)})" if found else ""


#: The checkpoint of each run that a folder evaluation takes, in order of preference.
RUN_CHECKPOINTS = ("best.ckpt", "last.ckpt")


def run_checkpoints(folder: str | os.PathLike[str]) -> list[Path]:
    """One checkpoint per run folder below `folder` (a sweep, or a single run): its
    `checkpoints/best.ckpt`, else `checkpoints/last.ckpt`, in natural order of the run
    folders (job 2 before job 10). Raises `CheckpointError` when there is none."""
    import re

    root = Path(folder)

    def natural(path: Path) -> list[Any]:
        return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.as_posix())]

    found = []
    for checkpoints in sorted(root.glob("**/checkpoints"), key=natural):
        for name in RUN_CHECKPOINTS:
            if (checkpoints / name).is_file():
                found.append(checkpoints / name)
                break
    if not found:
        raise CheckpointError(
            f"no run checkpoints below {root} (looked for */checkpoints/"
            f"{' or '.join(RUN_CHECKPOINTS)}); give a sweep or run folder, or "
            "ckpt_path=<run>/checkpoints/best.ckpt"
        )
    return found
