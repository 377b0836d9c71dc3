"""What a network costs and sees: parameters, FLOPs, activation memory, receptive fields.

One forward pass at a given input size, run on fake tensors (shapes only, no arithmetic, so a
paper-size 3D net is analysed in about a second), measures the parameters, forward FLOPs and
activation memory of the net and of each stage (:mod:`.analyze`), and the **theoretical receptive
field** of every stage in the style of V-Net's Table 1 (Milletari et al. 2016), computed exactly
from the operations the forward pass actually runs (:mod:`.receptive_field`);
:func:`format_analysis` prints them as a table (:mod:`.table`, what ``volseg info`` shows)::

    analysis = analyze_model(create_model("vnet"), (128, 128, 64))
    print(format_analysis(analysis, title="vnet"))
"""

from __future__ import annotations

from volseg.nn.analysis.analyze import ModelAnalysis, StageInfo, analyze_model, count_parameters
from volseg.nn.analysis.receptive_field import ReceptiveField
from volseg.nn.analysis.table import format_analysis

__all__ = [
    "ModelAnalysis",
    "ReceptiveField",
    "StageInfo",
    "analyze_model",
    "count_parameters",
    "format_analysis",
]
