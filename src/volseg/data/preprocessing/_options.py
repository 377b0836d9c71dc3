"""Checking an enum-like configuration string against its ``Literal`` choices."""

from __future__ import annotations

from typing import TypeVar

_Choice = TypeVar("_Choice", bound=str)


def choose(value: str, options: tuple[_Choice, ...], key: str) -> _Choice:
    """``value`` as one of ``options`` (typed as their ``Literal``); ``ValueError`` naming ``key``.

    Configuration strings come from YAML, so the ``Literal`` type hints alone do not guard them.
    """
    for option in options:
        if value == option:
            return option
    raise ValueError(f"{key}: {value!r}; use {', '.join(options)}")
