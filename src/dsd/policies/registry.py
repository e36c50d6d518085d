"""Name -> factory registries, so configs can say `router: jsq`."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class UnknownPolicyError(ValueError):
    """Raised when a config names a policy that is not registered."""


class Registry(Generic[T]):
    """A registry of policy factories of one family (router, batcher, window, mode)."""

    def __init__(self, family: str) -> None:
        self.family = family
        self._factories: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        def decorator(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._factories:
                raise ValueError(f"{self.family} policy {name!r} is already registered")
            self._factories[name] = factory
            return factory

        return decorator

    def create(self, name: str, **params: Any) -> T:
        try:
            factory = self._factories[name]
        except KeyError:
            known = ", ".join(sorted(self._factories))
            raise UnknownPolicyError(
                f"unknown {self.family} policy {name!r} (known: {known})"
            ) from None
        unknown = _unknown_parameter(factory, params)
        if unknown is not None:
            raise UnknownPolicyError(f"{self.family} {name!r} takes no parameter {unknown}")
        try:
            return factory(**params)
        except TypeError as exc:
            raise UnknownPolicyError(f"bad parameters for {self.family} {name!r}: {exc}") from None

    def parameters(self, name: str) -> set[str] | None:
        """The parameters policy `name` takes; None when unknown or it takes any."""
        factory = self._factories.get(name)
        return None if factory is None else _parameters(factory)

    def names(self) -> list[str]:
        return sorted(self._factories)

    def __contains__(self, name: str) -> bool:
        return name in self._factories


def _parameters(factory: Callable[..., Any]) -> set[str] | None:
    """Keyword parameters of a factory; None when its signature cannot tell (**kwargs)."""
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()):
        return None
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {n for n, p in sig.parameters.items() if p.kind in kinds}


def _unknown_parameter(factory: Callable[..., Any], params: dict[str, Any]) -> str | None:
    """"'x' (it takes: a, b)" for the first of `params` the factory does not take, else None."""
    takes = _parameters(factory)
    extra = next((k for k in params if takes is not None and k not in takes), None)
    if extra is None:
        return None
    order = [n for n in inspect.signature(factory).parameters if n in takes]  # type: ignore[operator]
    return f"{extra!r} (it takes: {', '.join(order) or 'none'})"
