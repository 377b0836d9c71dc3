"""The plain-text summary of a :class:`ModelAnalysis`: totals, then one row per stage in the
style of V-Net's Table 1 (Milletari et al. 2016); what ``volseg info`` prints."""

from __future__ import annotations

from volseg.nn.analysis.analyze import ModelAnalysis
from volseg.nn.analysis.receptive_field import ReceptiveField

__all__ = ["format_analysis"]


def _fmt_rf(field: ReceptiveField) -> str:
    size, low = field.size, field.min_size
    if size is None or low is None:
        return "global"
    text = "x".join(str(s) for s in size)
    return text if low == size else f"{text} (min {'x'.join(str(s) for s in low)})"


def _fmt_jump(field: ReceptiveField) -> str:
    jump = field.jump
    if jump is None:
        return "-"
    return "x".join(str(j) for j in jump)


def format_analysis(analysis: ModelAnalysis, title: str = "") -> str:
    """A plain-text summary: totals, then one row per stage (V-Net Table 1 style)."""
    a = analysis
    lines = [
        f"{title + '  ' if title else ''}input {'x'.join(map(str, a.input_shape))} -> "
        f"output {'x'.join(map(str, a.output_shape))}",
        f"parameters        {a.parameters:,} ({a.trainable_parameters:,} trainable)",
        f"forward           {a.macs / 1e9:,.2f} GMAC = {a.flops / 1e9:,.2f} GFLOP "
        "(1 MAC = 2 FLOPs; conv, transposed conv and linear layers)",
        f"activation memory {a.activation_bytes / 2**20:,.1f} MiB "
        "(new outputs of leaf modules in one forward pass)",
        f"receptive field   {_fmt_rf(a.receptive_field)} input voxels (largest over output voxels)",
        "",
    ]
    rows = [("stage", "output (C x size)", "jump", "receptive field", "params", "GFLOP", "act MiB")]
    for s in a.stages:
        rows.append(
            (
                s.name,
                "x".join(map(str, s.output_shape[1:])),
                _fmt_jump(s.receptive_field),
                _fmt_rf(s.receptive_field),
                f"{s.parameters:,}",
                f"{2 * s.macs / 1e9:.3f}",
                f"{s.activation_bytes / 2**20:.1f}",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for k, r in enumerate(rows):
        cells = [c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))]
        lines.append("  ".join(cells).rstrip())
        if k == 0:
            lines.append("-" * len(lines[-1]))
    return "\n".join(lines)
