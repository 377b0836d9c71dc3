"""volseg: segmentation of medical volumes with the networks, losses and recipes of five papers.

The flat public API. Torch-heavy names (``Predictor``, ``train``, ``create_model``...) are
imported on first use, so ``import volseg`` and ``volseg --help`` stay fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from volseg.config import Config, load_config
from volseg.io import Volume, read_volume, write_volume

if TYPE_CHECKING:
    from volseg.data.layouts import find_cases, list_layouts
    from volseg.data.transforms import list_transforms
    from volseg.inference import Predictor
    from volseg.losses import create_loss, list_losses
    from volseg.nn import create_model, list_models
    from volseg.training.trainer import train

__all__ = [
    "Config",
    "Predictor",
    "Volume",
    "create_loss",
    "create_model",
    "find_cases",
    "list_layouts",
    "list_losses",
    "list_models",
    "list_transforms",
    "load_config",
    "read_volume",
    "train",
    "write_volume",
]
__version__ = "0.1.0"

_LAZY = {
    "Predictor": "volseg.inference",
    "create_loss": "volseg.losses",
    "list_losses": "volseg.losses",
    "create_model": "volseg.nn",
    "find_cases": "volseg.data.layouts",
    "list_layouts": "volseg.data.layouts",
    "list_transforms": "volseg.data.transforms",
    "list_models": "volseg.nn",
    "train": "volseg.training.trainer",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'volseg' has no attribute {name!r}")
