"""volseg: segmentation of medical volumes with the networks, losses and recipes of five papers."""

from volseg.config import Config, load_config
from volseg.io import Volume, read_volume, write_volume

__all__ = ["Config", "Volume", "load_config", "read_volume", "write_volume"]
__version__ = "0.1.0"
