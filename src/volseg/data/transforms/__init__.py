"""Random transforms for augmentation: seeded ``get_params`` + deterministic apply, one grid.

The modules register their transforms when imported; they are imported here explicitly, so
:func:`list_transforms` is complete once this package is imported.

* :mod:`.base`: :class:`RandomTransform`, :class:`Compose`, :class:`Sample`, the registry.
* :mod:`.grid` and :mod:`.bspline`: the sampling grid and cubic B-spline fields.
* :mod:`.spatial`: ``flip``, ``affine``, ``bspline``, ``crop`` (in mm).
* :mod:`.fov`: ``fov_cut`` (the scan's field of view cut at its borders; cuts the label too).
* :mod:`.intensity`: ``intensity_shift_scale``, ``gamma``, ``noise``, ``bias_field``.
* :mod:`.histogram`: ``histogram_matching`` (V-Net).
* :mod:`.tissue`: ``tissue_contrast`` (each labelled tissue's own gain; needs the label).
"""

from __future__ import annotations

from volseg.data.transforms.base import (
    TRANSFORMS,
    ChannelStats,
    Compose,
    Context,
    IntensityTransform,
    LabelIntensityTransform,
    MaskTransform,
    RandomTransform,
    Sample,
    SpatialTransform,
    build_augmentation,
    channel_stats,
    create_transform,
    list_transforms,
    params_from_dict,
    params_to_dict,
    register_transform,
)
from volseg.data.transforms.fov import FovCutParams, RandomFovCut, head_box
from volseg.data.transforms.histogram import (
    HistogramParams,
    HistogramTable,
    RandomHistogramMatching,
    histogram_table,
    match_histogram,
)
from volseg.data.transforms.intensity import (
    BiasFieldParams,
    GammaParams,
    NoiseParams,
    RandomBiasField,
    RandomGamma,
    RandomIntensityShiftScale,
    RandomNoise,
    ShiftScaleParams,
)
from volseg.data.transforms.spatial import (
    AffineParams,
    BSplineParams,
    CropParams,
    FlipParams,
    RandomAffine,
    RandomBSplineDeformation,
    RandomCrop,
    RandomFlip,
)
from volseg.data.transforms.tissue import (
    RandomTissueContrast,
    TissueContrastParams,
    tissue_gain_map,
)

__all__ = [
    "TRANSFORMS",
    "AffineParams",
    "BSplineParams",
    "BiasFieldParams",
    "ChannelStats",
    "Compose",
    "Context",
    "CropParams",
    "FlipParams",
    "FovCutParams",
    "GammaParams",
    "HistogramParams",
    "HistogramTable",
    "IntensityTransform",
    "LabelIntensityTransform",
    "MaskTransform",
    "NoiseParams",
    "RandomAffine",
    "RandomBSplineDeformation",
    "RandomBiasField",
    "RandomCrop",
    "RandomFlip",
    "RandomFovCut",
    "RandomGamma",
    "RandomHistogramMatching",
    "RandomIntensityShiftScale",
    "RandomNoise",
    "RandomTissueContrast",
    "RandomTransform",
    "Sample",
    "ShiftScaleParams",
    "SpatialTransform",
    "TissueContrastParams",
    "build_augmentation",
    "channel_stats",
    "create_transform",
    "head_box",
    "histogram_table",
    "list_transforms",
    "match_histogram",
    "params_from_dict",
    "params_to_dict",
    "register_transform",
    "tissue_gain_map",
]
