"""The layer rule of docs/architecture.md: a module imports only from its own layer or lower.

Every ``import`` in every module counts, also those inside functions (lazy imports still tie a
module to the one it imports). A module in no layer fails the test: give it one in ``LAYERS``.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

# lowest first; a prefix ending in "." covers a package's modules
LAYERS: list[tuple[str, ...]] = [
    (
        "volseg.config",
        "volseg.registry",
        "volseg.io",
        "volseg.regions",
        "volseg.decoding",
        "volseg._allocator",
        "volseg._atomic",
        "volseg._device",
        "volseg._nifti",
        "volseg._typed",
        "volseg._legacy_config",
    ),
    ("volseg.data",),
    ("volseg.nn",),
    ("volseg.losses", "volseg.metrics"),
    ("volseg.training",),
    ("volseg.inference", "volseg.export", "volseg.evaluation"),
    (
        "volseg.report",
        "volseg.crossval",
        "volseg.synth",
        "volseg.experiments",
        "volseg.fingerprint",
        "volseg.plan",
    ),
    ("volseg.cli", "volseg.demo", "volseg.__main__"),
]


def layer_of(module: str) -> int | None:
    for index, names in enumerate(LAYERS):
        if any(module == name or module.startswith(name + ".") for name in names):
            return index
    return None


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, module: str) -> set[str]:
    """Every volseg module ``path`` imports (absolute names; relative imports resolved)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return {name for name in found if name == "volseg" or name.startswith("volseg.")}


MODULES = sorted(
    (module_name(p), p) for p in (SRC / "volseg").rglob("*.py") if p.name != "__init__.py"
) + [(module_name(p), p) for p in sorted((SRC / "volseg").rglob("__init__.py"))]


def test_every_module_has_a_layer() -> None:
    missing = [name for name, _ in MODULES if name != "volseg" and layer_of(name) is None]
    assert not missing, f"modules in no layer (add them to LAYERS): {missing}"


@pytest.mark.parametrize(("module", "path"), MODULES, ids=[m for m, _ in MODULES])
def test_no_upward_import(module: str, path: Path) -> None:
    if module == "volseg":  # the flat public API re-exports from every layer, lazily
        return
    own = layer_of(module)
    assert own is not None
    known = {name for name, _ in MODULES}
    upward = []
    for name in sorted(imported_modules(path, module)):
        if name not in known:  # ``from volseg.x import function``: the module is its parent
            continue
        other = layer_of(name)
        if other is not None and other > own:
            upward.append(f"{module} (layer {own}) imports {name} (layer {other})")
    assert not upward, "; ".join(upward)


def test_the_rule_catches_an_upward_import(tmp_path: Path) -> None:
    """The checker itself: a data module importing the trainer is reported."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from volseg.training.trainer import train\n", encoding="utf-8")
    names = imported_modules(bad, "volseg.data.bad")
    assert "volseg.training.trainer" in names
    assert layer_of("volseg.training.trainer") > layer_of("volseg.data.bad")  # type: ignore[operator]


def test_inference_does_not_load_the_trainer() -> None:
    code = "import sys, volseg.inference; print('volseg.training.trainer' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
