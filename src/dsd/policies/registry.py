"""Name -> factory registries, so configs can say `router: jsq`."""

from __future__ import annotations

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
        try:
            return factory(**params)
        except TypeError as exc:
            raise UnknownPolicyError(f"bad parameters for {self.family} {name!r}: {exc}") from None

    def names(self) -> list[str]:
        return sorted(self._factories)

    def __contains__(self, name: str) -> bool:
        return name in self._factories
