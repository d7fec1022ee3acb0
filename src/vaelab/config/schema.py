"""What a config key may hold, read from the code that receives it.

Every config node with a `_target_` is checked against the signature of that target:
each key must be one of its parameters, and each value must fit the parameter's type
annotation, ranges included (`Annotated[int, Field(ge=1)]`, validated by pydantic in
strict JSON mode, so `1.5` is not an int and `"1"` is not a number). The keys of an
app's own config that no target receives are checked the same way against a pydantic
model (`vaelab.config.settings`). So the rule for a key lives once, in the signature of the
function that uses it, and the message a user sees is derived from it:

    trainer.max_epochs='abc' must be an integer >= -1 (e.g. trainer.max_epochs=4)

The example is the key's value in the default config when that is valid, else the
`examples` of its `Field`, else one made from the bounds. A value that comes from an
interpolation of another key (`data.seed: ${seed}`) is reported under the key the
user typed (`seed=-1`). Third-party signatures that carry types but no ranges
(Lightning's `Trainer`) get theirs from `vaelab.config.upstream_ranges`, the one place for them.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import json
import re
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union, cast

import annotated_types as at
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from vaelab.errors import ConfigError

#: Hydra's instantiate keys: not arguments of the target.
HYDRA_KEYS = frozenset({"_target_", "_recursive_", "_convert_", "_partial_", "_args_"})

#: A random seed: numpy's generators (and so `lightning.seed_everything`) take 0..2**32-1.
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]


def _names_a_target(value: Mapping[str, Any]) -> Mapping[str, Any]:
    if "_target_" not in value:
        raise ValueError("a mapping without _target_")
    return value


#: A parameter that takes a `_target_` config (the receiver instantiates it): a mapping
#: without `_target_` is refused here, not with a KeyError when it is built.
TargetConfig = Annotated[Mapping[str, Any], AfterValidator(_names_a_target)]

_VALIDATION = ConfigDict(arbitrary_types_allowed=True, allow_inf_nan=False)
_SIMPLE_REF = re.compile(r"^\$\{([A-Za-z_][\w.]*)\}$")


@dataclass(frozen=True)
class Prepared:
    """Marks a parameter that takes a `_target_` config which the receiver adapts before
    calling the target (`Annotated[Mapping | None, Prepared(fn)]`): the check sees the
    config as `fn` leaves it, i.e. as the call will."""

    prepare: Callable[[dict[str, Any]], dict[str, Any]]


# ----------------------------------------------------------------------- targets


def import_target(path: Any, key: str) -> Any:
    """The object `_target_` names; a `ConfigError` with did-you-mean if it does not import."""
    if not isinstance(path, str) or not re.fullmatch(r"[A-Za-z_][\w.]*", path):
        raise ConfigError(
            f"{key}={path!r} must be a dotted import path (e.g. {key}=torch.optim.Adam)"
        )
    module_name = path.rpartition(".")[0]
    module = _import_longest(module_name)
    if module is None:
        top = path.split(".")[0]
        raise ConfigError(f"{key}={path}: there is no module {top!r} here (is it installed?)")
    obj: Any = module
    for part in path[len(module.__name__) + 1 :].split("."):
        if not hasattr(obj, part):
            owner = getattr(obj, "__name__", module_name)
            members = [m for m in dir(obj) if not m.startswith("_")]
            close = difflib.get_close_matches(part, members, n=1)
            hint = f"did you mean {key}={owner}.{close[0]}?" if close else f"see dir({owner})"
            raise ConfigError(f"{key}={path}: {owner} has no {part!r} ({hint})")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ConfigError(f"{key}={path} is not a class or function")
    return obj


def _import_longest(module_name: str) -> types.ModuleType | None:
    parts = module_name.split(".") if module_name else []
    for end in range(len(parts), 0, -1):
        name = ".".join(parts[:end])
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and not name.startswith(exc.name):
                # The module exists but one of its own imports is not installed.
                raise ConfigError(
                    f"module {name} needs {exc.name!r}, which is not installed here "
                    f"(pip install {exc.name.split('.')[0]})"
                ) from None
    return None


@dataclass(frozen=True)
class Signature:
    """A target's named parameters, their annotations, and whether it takes **kwargs."""

    parameters: dict[str, inspect.Parameter]
    annotations: dict[str, Any]
    open: bool


def signature_of(target: Any) -> Signature:
    """Named parameters of a function or class, following `**kwargs` up a class's MRO
    (a subclass that passes `**kwargs` on takes its parent's arguments too)."""
    from vaelab.config.upstream_ranges import ranges_for

    # `Any`: a class's own __init__, whatever its signature (mypy calls reading it unsound)
    functions = (
        [cast(Any, c).__init__ for c in target.__mro__ if "__init__" in vars(c)]
        if isinstance(target, type)
        else [target]
    )
    parameters: dict[str, inspect.Parameter] = {}
    annotations: dict[str, Any] = {}
    is_open = True
    for function in functions:
        try:
            params = inspect.signature(function).parameters
        except (TypeError, ValueError):
            break
        hints = _hints(function)
        for name, param in params.items():
            if name == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            parameters.setdefault(name, param)
            annotations.setdefault(name, hints.get(name, Any))
        is_open = any(p.kind is p.VAR_KEYWORD for p in params.values())
        if not is_open or function is object.__init__:
            break
    if isinstance(target, type) and cast(Any, target).__init__ is object.__init__:
        is_open = False
    annotations.update(ranges_for(target))
    return Signature(parameters, annotations, is_open)


def _hints(function: Any) -> dict[str, Any]:
    """The resolved annotations of `function`; where one does not resolve (a name only
    imported for type checkers), the others still are, one by one."""
    try:
        return typing.get_type_hints(function, include_extras=True)
    except Exception:  # one annotation that does not resolve
        return _hints_one_by_one(function)


def _hints_one_by_one(function: Any) -> dict[str, Any]:
    hints: dict[str, Any] = {}
    namespace = dict(getattr(function, "__globals__", {}))
    for name, annotation in getattr(function, "__annotations__", {}).items():
        try:
            # What get_type_hints does for each string annotation, on its own.
            hints[name] = eval(annotation, namespace) if isinstance(annotation, str) else annotation
        except Exception:  # this one does not resolve: its values are not checked
            continue
    return hints


def _target_nodes(node: Any, path: str) -> Iterator[tuple[str, DictConfig]]:
    """Every mapping with a `_target_` at or below `node`, with its dotted key."""
    if node._is_none() or node._is_missing() or node._is_interpolation():
        return  # null, ??? or ${...}: no mapping here to look into
    if isinstance(node, DictConfig):
        if OmegaConf.is_missing(node, "_target_") or "_target_" in node:
            yield path, node
        key: Any  # a config key: str, or int/Enum/bytes/... in a structured config
        for key in node:
            if key in HYDRA_KEYS:
                continue
            child = node._get_node(key)
            if isinstance(child, DictConfig | ListConfig):
                yield from _target_nodes(child, f"{path}.{key}" if path else str(key))
    elif isinstance(node, ListConfig):
        for i in range(len(node)):
            item = node._get_node(i)
            if isinstance(item, DictConfig | ListConfig):
                yield from _target_nodes(item, f"{path}[{i}]")


def _holds_target(node: Any) -> bool:
    return any(True for _ in _target_nodes(node, ""))


def check_targets(cfg: DictConfig, defaults: DictConfig | None = None, prefix: str = "") -> None:
    """Raise `ConfigError` on the first key of a `_target_` node below `cfg` that its
    target does not take, or whose value does not fit the parameter."""
    prepared: dict[int, Prepared] = {}
    for path, node in _target_nodes(cfg, prefix):
        if OmegaConf.is_missing(node, "_target_"):
            raise ConfigError(f"{path}._target_ is required (the class or function to build)")
        target = import_target(node._target_, f"{path}._target_")
        signature = signature_of(target)
        marker = prepared.pop(id(node), None)
        keys: list[Any] = [k for k in node if k not in HYDRA_KEYS]  # config keys
        if marker is not None:
            container = marker.prepare(_plain(node))
            keys = [k for k in keys if k in container]
        for key in keys:
            full = f"{path}.{key}"
            if key not in signature.parameters and key not in signature.annotations:
                if signature.open:
                    continue
                _unknown_argument(full, str(node._target_), list(signature.parameters))
            annotation = signature.annotations.get(key, Any)
            child = node._get_node(key)
            if isinstance(child, DictConfig | ListConfig) and _holds_target(child):
                found = _marker(annotation)
                if found is not None and isinstance(child, DictConfig):
                    prepared[id(child)] = found
                continue  # built by the receiver: checked as its own node
            default = signature.parameters[key].default if key in signature.parameters else None
            check_value(node, key, full, annotation, defaults, default)


def _marker(annotation: Any) -> Prepared | None:
    if typing.get_origin(annotation) is Annotated:
        return next((m for m in annotation.__metadata__ if isinstance(m, Prepared)), None)
    return None


def _unknown_argument(key: str, target: str, known: Sequence[str]) -> typing.NoReturn:
    leaf = key.rsplit(".", 1)[-1]
    close = difflib.get_close_matches(leaf, known, n=1)
    parent = key.rsplit(".", 1)[0]
    hint = f"did you mean {parent}.{close[0]}?" if close else f"it takes: {', '.join(known)}"
    raise ConfigError(f"{key} is not an argument of {target} ({hint})")


# ----------------------------------------------------------------------- settings


def check_settings(
    cfg: DictConfig, model: type[BaseModel], defaults: DictConfig | None = None, prefix: str = ""
) -> None:
    """Check the keys of `cfg` that `model` (a pydantic model of plain fields and nested
    models) declares; keys it does not declare are left to `check_targets`."""
    for name, field in model.model_fields.items():
        if name not in cfg:
            continue
        full = f"{prefix}{name}"
        annotation = field.annotation
        nested = [
            a for a in _flatten(annotation) if isinstance(a, type) and issubclass(a, BaseModel)
        ]
        child = cfg._get_node(name)
        if nested and isinstance(child, DictConfig) and not child._is_none():
            check_settings(child, nested[0], defaults, f"{full}.")  # a block of settings
            continue
        metadata = list(field.metadata)
        if field.examples:
            metadata.append(Field(examples=field.examples))
        full_annotation = Annotated[(annotation, *metadata)] if metadata else annotation
        check_value(cfg, name, full, full_annotation, defaults)


# ----------------------------------------------------------------------- values


def check_value(
    node: DictConfig,
    key: str,
    full: str,
    annotation: Any,
    defaults: DictConfig | None,
    default: Any = None,
) -> None:
    """Raise `ConfigError` if `node[key]` is missing or does not fit `annotation`.
    `defaults` (the default config) and `default` (the parameter's own default) give
    the example in the message."""
    shown_key = _source_key(node, key) or full
    if OmegaConf.is_missing(node, key):
        example = _example(shown_key, annotation, defaults, default)
        what = describe(annotation)
        raise ConfigError(f"{shown_key} is required: give {what}{_eg(shown_key, example)}")
    try:
        value = _plain(node._get_node(key))
    except OmegaConfBaseException as exc:
        if "hydra" in str(exc).lower():
            return  # ${hydra:...}: set only when the job runs
        message = str(exc).strip().splitlines()[0]
        raise ConfigError(f"{shown_key} cannot be resolved: {message}") from None
    if fits(value, annotation):
        return
    example = _example(shown_key, annotation, defaults, default)
    problem = "is not finite; it must be" if _non_finite(value) else "must be"
    raise ConfigError(
        f"{shown_key}={value!r} {problem} {describe(annotation)}{_eg(shown_key, example)}"
    )


def _non_finite(value: Any) -> bool:
    return isinstance(value, float) and (value != value or value in (float("inf"), -float("inf")))


def fits(value: Any, annotation: Any) -> bool:
    """Whether a plain config value (from YAML or the command line) fits `annotation`."""
    annotation = _checkable(annotation)
    if annotation is Any:
        return True
    try:
        adapter = TypeAdapter(annotation, config=_VALIDATION)
    except Exception:  # a type pydantic cannot build a validator for: not checked
        return True
    try:
        # NaN and ±inf encode as NaN / Infinity, which allow_inf_nan=False refuses.
        encoded = json.dumps(value)
    except TypeError:  # not a plain config value: nothing to check it against
        return True
    try:
        adapter.validate_json(encoded, strict=True)
    except ValidationError:
        return False
    return True


def _checkable(annotation: Any) -> Any:
    """`annotation` without the options a config value cannot take (a Tensor, a
    DictConfig object); `Any` when none is left, i.e. when a config cannot be wrong."""
    if annotation is inspect.Parameter.empty:
        return Any
    options = _flatten(annotation)
    kept = [a for a in options if _representable(a)]
    if not kept or all(a is type(None) for a in kept):
        return Any
    if len(kept) == len(options):
        return annotation
    return Union[tuple(kept)]  # noqa: UP007 - built from a runtime tuple


def _source_key(node: DictConfig, key: str) -> str | None:
    """'seed' for a value written `${seed}`: the key the user sets."""
    child = node._get_node(key)
    raw = child._value() if child is not None else None
    match = _SIMPLE_REF.match(raw) if isinstance(raw, str) else None
    return match.group(1) if match else None


def _plain(node: Any) -> Any:
    if isinstance(node, DictConfig | ListConfig):
        return OmegaConf.to_container(node, resolve=True)
    value = node._dereference_node()._value() if node._is_interpolation() else node._value()
    return value


def _example(key: str, annotation: Any, defaults: DictConfig | None, default: Any = None) -> Any:
    """A valid value for `key`: the default config's, the parameter's default, a `Field`'s
    `examples`, or one made from the bounds, whichever fits first."""
    candidates: list[Any] = []
    if defaults is not None:
        try:
            configured = OmegaConf.select(defaults, key, throw_on_missing=True)
        except OmegaConfBaseException:  # missing or unresolvable there: no example from it
            configured = None
        if isinstance(configured, DictConfig | ListConfig):
            configured = OmegaConf.to_container(configured)
        candidates.append(configured)
    if default is not inspect.Parameter.empty:
        candidates.append(default)
    candidates += [*_field_examples(annotation), *_made_up_examples(annotation)]
    return next((c for c in candidates if c is not None and fits(c, annotation)), None)


def _field_examples(annotation: Any) -> list[Any]:
    found: list[Any] = []
    for arg in _flatten(annotation):
        if typing.get_origin(arg) is Annotated:
            for meta in arg.__metadata__:
                found += list(getattr(meta, "examples", None) or [])
    return found


def _made_up_examples(annotation: Any) -> list[Any]:
    made: list[Any] = []
    for arg in _flatten(annotation):
        base, bounds = _split(arg)
        origin = typing.get_origin(base)
        if origin is Literal:
            made += list(typing.get_args(base))
        elif base is bool:
            made.append(True)
        elif base in (int, float):
            # bounds of an int or float: numbers
            low = cast("float | None", next((b.ge for b in bounds if isinstance(b, at.Ge)), None))
            above = cast("float | None", next((b.gt for b in bounds if isinstance(b, at.Gt)), None))
            if low is None and above is not None:
                low = above + 1 if base is int else above + 1.0
            made.append(base(low if low is not None else 1))
    return made


def _eg(key: str, example: Any) -> str:
    return "" if example is None else f" (e.g. {key}={_override(example)})"


def _override(value: Any) -> str:
    """A value written as on Hydra's command line."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | tuple):
        return "[" + ",".join(_override(v) for v in value) + "]"
    return str(value)


# ----------------------------------------------------------------------- describing types

_NAMES: dict[Any, tuple[str, str]] = {
    int: ("an integer", "integers"),
    float: ("a number", "numbers"),
    str: ("a string", "strings"),
    bool: ("true or false", "true/false values"),
    Path: ("a path", "paths"),
}


def describe(annotation: Any, plural: bool = False) -> str:
    """An annotation in words: 'an integer >= 1', 'one of norm, value', 'a list of integers'."""
    options = [a for a in _flatten(annotation) if _representable(a)]
    nullable = any(a is type(None) for a in options)
    literals = [v for a in options if typing.get_origin(a) is Literal for v in typing.get_args(a)]
    words = [
        _describe_one(a, plural)
        for a in options
        if a is not type(None) and typing.get_origin(a) is not Literal
    ]
    if literals:  # Literal[64, 32] | Literal["bf16-mixed", ...]: one list of the values
        words.insert(0, "one of " + ", ".join(dict.fromkeys(_override(v) for v in literals)))
    words = list(dict.fromkeys(words)) or ["null"]
    text = " or ".join(words)
    return f"{text} or null" if nullable and words != ["null"] else text


def _describe_one(annotation: Any, plural: bool) -> str:
    base, bounds = _split(annotation)
    origin = typing.get_origin(base)
    if origin is Literal:
        return "one of " + ", ".join(_override(a) for a in typing.get_args(base))
    if base in _NAMES:
        text = _NAMES[base][1 if plural else 0]
    elif origin in (list, tuple, Sequence, typing.Sequence) or base in (list, tuple):
        args = [a for a in typing.get_args(base) if a is not Ellipsis]
        inner = describe(args[0], plural=True) if args else "values"
        text = f"a list of {inner}" if not plural else f"lists of {inner}"
    elif _takes_a_target(annotation):
        text = "a config with a _target_"
    elif origin in (dict, Mapping) or base in (dict, Mapping):
        key_value = typing.get_args(base)
        plain = len(key_value) == 2 and key_value[1] is not Any
        text = (
            f"a mapping (values: {describe(key_value[1], plural=True)})" if plain else "a mapping"
        )
    else:
        text = "a value"
    return text + _bounds_text(bounds)


def _bounds_text(bounds: Sequence[Any]) -> str:
    parts = [f"matching {_pattern(b)}" for b in bounds if _pattern(b)]
    parts += [f"of at least {b.min_length} item(s)" for b in bounds if isinstance(b, at.MinLen)]
    for bound in bounds:
        for kind, symbol in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            if hasattr(bound, kind) and isinstance(bound, at.BaseMetadata):
                parts.append(f"{symbol} {_override(getattr(bound, kind))}")
    return (" " + " and ".join(parts)) if parts else ""


def _takes_a_target(annotation: Any) -> bool:
    while typing.get_origin(annotation) is Annotated:
        if any(getattr(m, "func", None) is _names_a_target for m in annotation.__metadata__):
            return True
        annotation = typing.get_args(annotation)[0]
    return False


def _split(annotation: Any) -> tuple[Any, list[Any]]:
    """(base type, bound constraints) of a possibly `Annotated` type."""
    bounds: list[Any] = []
    while typing.get_origin(annotation) is Annotated:
        for meta in annotation.__metadata__:
            bounds += list(getattr(meta, "metadata", [meta]))
        annotation = typing.get_args(annotation)[0]
    return annotation, [b for b in bounds if isinstance(b, at.BaseMetadata) or _pattern(b)]


def _pattern(metadata: Any) -> str | None:
    pattern = getattr(metadata, "pattern", None)
    return pattern if isinstance(pattern, str) else None


def _flatten(annotation: Any) -> list[Any]:
    """The options of a union (nested unions and Optional included), else [annotation]."""
    base, _ = _split(annotation)
    if typing.get_origin(base) in (Union, types.UnionType):
        out: list[Any] = []
        for arg in typing.get_args(base):
            out += _flatten(arg)
        return out
    return [annotation]


def _representable(annotation: Any) -> bool:
    """Whether a config value can be of this type (a Tensor or a Strategy object cannot)."""
    base, _ = _split(annotation)
    if base is type(None) or base in _NAMES or base is Any:
        return True
    origin = typing.get_origin(base)
    if origin is Literal or origin in (list, tuple, dict, Sequence, Mapping, typing.Sequence):
        return True
    return base in (list, tuple, dict)
