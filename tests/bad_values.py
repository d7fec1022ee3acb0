"""The generated bad-value sweep's cases, walked from conf/ (not a hand list).

For every option of every config group of `conf/train.yaml` (each file under conf/, the
Hydra launcher and sweeper plugins' too) the config is composed with that option chosen,
and each leaf key the option sets is given values a user could mistype: one of the wrong
type and, for a number, one out of any range a count or size could have. The train
config's own keys (`seed`, `beta`, ...) are cases too. `tests/test_bad_values.py` runs
each command line and asserts the one-line contract.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from helpers import REPO
from in_process import fresh_hydra
from omegaconf import DictConfig, ListConfig, OmegaConf

CONF = REPO / "conf"

#: A value no key of any type takes: not a number, not a bool, not a list, not a path
#: that exists, not an import path.
NOT_ANYTHING = "{not: [a, valid, value]}"
#: Out of range for every count, size, rate or weight: a negative number larger than
#: any int64 or than what any float setting means.
NEGATIVE_HUGE_INT = str(-(10**30))
NEGATIVE_HUGE_FLOAT = "-1e300"


@dataclass(frozen=True)
class Case:
    option: str  # the group option chosen, e.g. "model=conv" ("" for the primary config)
    key: str  # e.g. "model.encoder.channels"
    value: str  # as typed on the command line
    kind: str  # "wrong type" or "out of range"
    receiver: str  # the `_target_` that takes the key ("" for a plain setting)

    @property
    def overrides(self) -> list[str]:
        chosen = [self.option] if self.option else []
        return [*chosen, f"{self.key}={self.value}"]

    @property
    def id(self) -> str:
        return " ".join(self.overrides)


def option_files() -> list[tuple[str, str, Path]]:
    """(group, option, file) for every option of every group under conf/, the model's
    shared part (`_shared`, which is not an option) left out."""
    found = []
    for path in sorted(CONF.rglob("*.yaml")):
        relative = path.relative_to(CONF)
        if len(relative.parts) == 1 or path.stem.startswith("_"):
            continue  # the apps' primary configs; shared parts are not options
        group = relative.parent.as_posix()
        if group == "hydra":
            continue  # hydra/default.yaml is the job settings' own file, always chosen
        found.append((group, path.stem, path))
    return found


def package(group: str, path: Path) -> str | None:
    """Where an option's keys land: its `# @package` line, or the group's path (None:
    `_global_`, the file's own keys are the keys)."""
    for line in path.read_text().splitlines():
        if line.startswith("# @package"):
            name = line.split(None, 2)[2].strip()
            return None if name == "_global_" else name
        if line.strip() and not line.startswith("#"):
            break
    return group.replace("/", ".")


def leaves(node: object, prefix: str) -> Iterator[tuple[str, object]]:
    """(dotted key, value) of every leaf below `node` (interpolations as written)."""
    if isinstance(node, DictConfig):
        for key in node:
            if key == "defaults":
                continue
            child = node._get_node(key)
            if isinstance(child, DictConfig | ListConfig) and not child._is_none():
                if isinstance(child, ListConfig):
                    yield f"{prefix}{key}", child
                else:
                    yield from leaves(child, f"{prefix}{key}.")
            else:
                yield f"{prefix}{key}", child._value() if child is not None else None


def bad_values(value: object) -> list[tuple[str, str]]:
    """(value, kind): the wrong type for every leaf, and for a number one out of range."""
    cases = [(NOT_ANYTHING, "wrong type")]
    if isinstance(value, bool):
        return cases
    if isinstance(value, int):
        cases.append((NEGATIVE_HUGE_INT, "out of range"))
    elif isinstance(value, float) and math.isfinite(value):
        cases.append((NEGATIVE_HUGE_FLOAT, "out of range"))
    return cases


def receiver(composed: DictConfig, key: str) -> str:
    """The `_target_` of the node that holds `key` ("" when none does)."""
    parent = key.rpartition(".")[0]
    node = OmegaConf.select(composed, parent) if parent else composed
    if isinstance(node, DictConfig) and "_target_" in node:
        return str(node._get_node("_target_")._value())
    return ""


@dataclass(frozen=True)
class Leaf:
    key: str
    value: object  # as composed (interpolations as written)
    receiver: str  # the `_target_` that takes the key ("" for a plain setting)


def option_leaves() -> dict[str, list[Leaf]]:
    """The leaf keys each option sets, by the option as typed (`model=conv`, `+setting=
    dlib_dsprites` for a group the defaults list does not name; "" for the train
    config's own keys)."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import ConfigCompositionException

    from vaelab.config.resolvers import register_resolvers

    register_resolvers()
    walked: dict[str, list[Leaf]] = {}
    with fresh_hydra(), initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        default = compose("train")
        primary = OmegaConf.load(CONF / "train.yaml")
        walked[""] = [
            Leaf(key, OmegaConf.select(default, key), "") for key, _ in leaves(primary, "")
        ]
        for group, option, path in option_files():
            chosen = f"{group}={option}"
            try:
                composed = compose("train", [chosen], return_hydra_config=True)
            except ConfigCompositionException:  # a group the defaults list does not name
                chosen = f"+{chosen}"
                composed = compose("train", [chosen], return_hydra_config=True)
            where = package(group, path)
            if where is None:
                own = OmegaConf.load(path)
                keys = [(k, v) for k, v in leaves(own, "") if not k.startswith("hydra.")]
            else:
                keys = list(leaves(OmegaConf.select(composed, where), f"{where}."))
            walked[chosen] = [Leaf(k, v, receiver(composed, k)) for k, v in keys]
    return walked


def cases() -> list[Case]:
    """Every (option, key, bad value) of the sweep. A key that several options give to
    the same `_target_` (trainer.max_epochs in each trainer option, data.batch_size in
    the data options that share a DataModule) is one rule, checked once, in the first
    option that sets it."""
    seen: set[tuple[str, str, str]] = set()
    found = []
    for option, option_keys in all_leaves().items():
        for leaf in option_keys:
            for bad, kind in bad_values(leaf.value):
                rule = (leaf.receiver, leaf.key, kind)
                if rule not in seen:
                    seen.add(rule)
                    found.append(Case(option, leaf.key, bad, kind, leaf.receiver))
    return found


@functools.cache
def all_leaves() -> dict[str, list[Leaf]]:
    return option_leaves()


def cases_of(option: str) -> list[Case]:
    """The cases of one group option (`model=conv`; "train.yaml" for the train config's
    own keys), in the order `cases` lists them."""
    return [c for c in all_cases() if (c.option.lstrip("+") or "train.yaml") == option]


@functools.cache
def all_cases() -> tuple[Case, ...]:
    return tuple(cases())
