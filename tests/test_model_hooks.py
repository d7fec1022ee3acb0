"""The VAE overrides Lightning's hooks by name; `@override` on each makes a renamed or
removed upstream hook a type error (mypy strict) instead of a method nobody calls."""

from __future__ import annotations

import inspect

import lightning as L

from vaelab.models import VAE


def overriding_methods(cls: type) -> dict[str, object]:
    """The methods `cls` defines itself that a LightningModule also has."""
    return {
        name: member
        for name, member in vars(cls).items()
        if not name.startswith("__") and callable(getattr(L.LightningModule, name, None))
    }


def marked(member: object) -> bool:
    function = member.__func__ if isinstance(member, classmethod | staticmethod) else member
    return any(
        getattr(f, "__override__", False)
        for f in (function, inspect.unwrap(function))  # type: ignore[arg-type]
    )


def test_every_lightning_hook_the_vae_defines_is_marked_override() -> None:
    found = overriding_methods(VAE)
    assert {"training_step", "configure_optimizers", "on_load_checkpoint"} <= set(found)
    assert [name for name, member in found.items() if not marked(member)] == []


def test_the_check_sees_a_hook_without_the_mark() -> None:
    class Unmarked(L.LightningModule):
        def training_step(self, batch: object, batch_idx: int) -> None:
            return None

    assert [n for n, m in overriding_methods(Unmarked).items() if not marked(m)] == [
        "training_step"
    ]
