"""What every layout shares: the :class:`Case` and :class:`Dataset` types, the layout registry,
and :func:`find_cases`, which asks the registered layouts in turn.

A layout is a :class:`Layout` subclass with a ``name``, a detection ``rank`` and two methods:
``detect(path)`` (does ``path`` look like this layout? file names only) and ``find(root)`` (the
cases under ``root``). ``@register_layout`` adds it to :data:`LAYOUTS`. A layout only names its
channels (:attr:`Dataset.channel_names`); picking a subset is :meth:`Dataset.select_channels`,
the same for every layout.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, TypeVar

from volseg.registry import Registry

__all__ = [
    "LAYOUTS",
    "Case",
    "Dataset",
    "Layout",
    "LayoutError",
    "detect_layout",
    "find_cases",
    "list_layouts",
    "register_layout",
]


class LayoutError(ValueError):
    """A dataset cannot be found or understood; the message names the path and the problem."""


@dataclass(frozen=True)
class Case:
    """One subject.

    Attributes:
        case_id: unique name of the case within its dataset.
        images: one file per channel, in channel order (a path may not exist yet).
        label: the label map, or ``None`` for unlabeled (prediction-only) cases.
    """

    case_id: str
    images: tuple[Path, ...]
    label: Path | None


@dataclass(frozen=True)
class Dataset:
    """The cases found under ``root`` and what the metadata declares about them.

    Attributes:
        root: the folder (or manifest file) the cases were found in.
        layout: the layout name, one of :func:`list_layouts`.
        cases: the cases, sorted by ``case_id``.
        channel_names: one name per input channel, in channel order.
        labels: declared label values including background 0, or ``None`` when unknown.
    """

    root: Path
    layout: str
    cases: tuple[Case, ...]
    channel_names: tuple[str, ...]
    labels: tuple[int, ...] | None

    def select_channels(self, names: Sequence[str]) -> Dataset:
        """The same dataset with only the channels ``names``, in that order.

        ``("t1ce", "flair")`` on BraTS keeps two of its four channels and puts t1ce first: each
        case's ``images`` are picked and reordered the same way. Names are matched exactly
        against :attr:`channel_names`; one string is one name.

        Raises:
            LayoutError: naming :attr:`root`, for an unknown or repeated name (listing the
                available ones), an empty selection, or a case that does not hold one file
                per channel (e.g. MSD's single 4-D file per case).
        """
        names = (names,) if isinstance(names, str) else tuple(names)
        available = ", ".join(self.channel_names)
        if not names:
            raise LayoutError(f"{self.root}: no channel selected; available: {available}")
        for name in names:
            if name not in self.channel_names:
                raise LayoutError(f"{self.root}: unknown channel {name!r}; available: {available}")
            if names.count(name) > 1:
                raise LayoutError(f"{self.root}: channel {name!r} selected more than once")
        index = [self.channel_names.index(name) for name in names]
        for case in self.cases:
            if len(case.images) != len(self.channel_names):
                raise LayoutError(
                    f"{self.root}: case {case.case_id!r} has {len(case.images)} image file(s) "
                    f"for {len(self.channel_names)} channels; channels can only be selected "
                    "from one file per channel"
                )
        cases = tuple(
            dataclasses.replace(case, images=tuple(case.images[i] for i in index))
            for case in self.cases
        )
        return dataclasses.replace(self, cases=cases, channel_names=names)


class Layout(ABC):
    """One way of storing a dataset on disk.

    Attributes:
        name: the name :func:`find_cases` takes and :attr:`Dataset.layout` holds.
        rank: auto-detection asks layouts in increasing rank; a specific layout (a metadata file
            or a file-name pattern) ranks before a generic one (``folder`` accepts any folder).
    """

    name: ClassVar[str]
    rank: ClassVar[int]

    @abstractmethod
    def detect(self, path: Path) -> bool:
        """Whether the existing ``path`` looks like this layout, from file names only."""

    @abstractmethod
    def find(self, root: Path) -> Dataset:
        """The cases under the existing ``root``; :class:`LayoutError` if it is not this layout.

        Files the layout promises but that are absent are listed with the path they should have.
        """


LAYOUTS = Registry[Layout]("layout")

_L = TypeVar("_L", bound=type[Layout])


def register_layout(cls: _L) -> _L:
    """Class decorator: register a :class:`Layout` subclass under its ``name``."""
    LAYOUTS.register(cls.name)(cls)
    return cls


def _by_rank() -> list[Layout]:
    layouts = [LAYOUTS.create(name) for name in LAYOUTS.list()]
    return sorted(layouts, key=lambda layout: (layout.rank, layout.name))


def list_layouts() -> list[str]:
    """The layout names :func:`find_cases` accepts (besides ``auto``), in detection order."""
    return [layout.name for layout in _by_rank()]


def find_cases(
    root: str | Path, layout: str = "auto", channels: Sequence[str] | None = None
) -> Dataset:
    """Find the cases of the dataset at ``root``.

    Only file names and metadata are read, never an image, so this is cheap.

    Args:
        root: a dataset folder, a ``.csv``/``.json`` manifest, or (``folder``) one image file.
        layout: one of :func:`list_layouts`, or ``auto``: the first layout in
            :func:`list_layouts` order whose ``detect`` accepts ``root``.
        channels: channel names to keep, in this order (``config.data.channels``), applied
            with :meth:`Dataset.select_channels`; ``None`` keeps the layout's channels.

    Raises:
        LayoutError: naming the path when ``root`` is missing, the layout is unknown or cannot
            be detected, the metadata is malformed, no case is found, or a channel is unknown.
    """
    path = Path(root).expanduser()
    if layout != "auto" and layout not in LAYOUTS:
        raise LayoutError(
            f"{path}: unknown layout {layout!r}; expected auto or one of "
            f"{', '.join(list_layouts())}"
        )
    if not path.exists():
        raise LayoutError(f"{path}: dataset root not found")
    chosen = _detect(path) if layout == "auto" else LAYOUTS.create(layout)
    dataset = chosen.find(path)
    if not dataset.cases:
        raise LayoutError(f"{path}: no cases found ({chosen.name} layout)")
    return dataset if channels is None else dataset.select_channels(channels)


def detect_layout(root: str | Path) -> str:
    """The name of the layout ``find_cases(root)`` would use (file names only).

    Raises:
        LayoutError: naming the path when it is missing or no layout recognises it.
    """
    path = Path(root).expanduser()
    if not path.exists():
        raise LayoutError(f"{path}: dataset root not found")
    return _detect(path).name


def _detect(path: Path) -> Layout:
    """The first layout, by rank, that recognises ``path``."""
    for layout in _by_rank():
        if layout.detect(path):
            return layout
    kind = "file" if path.is_file() else "folder"
    raise LayoutError(
        f"{path}: cannot detect a layout for this {kind} (tried {', '.join(list_layouts())}); "
        "expected e.g. a .csv/.json manifest or an image"
    )
