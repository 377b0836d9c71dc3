"""Run every benchmark in this folder, one after another, each in its own process.

``make bench`` calls this. Each script measures volseg beside its peer in one process and prints
its own table; run one alone with ``python benchmarks/<name>.py``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SKIP = {"run_all.py", "common.py", "__init__.py"}
# not peer benchmarks, or they need an input: run by hand (their docstrings say how)
BY_HAND = {
    "onnx_heldout.py": "needs a trained run: python benchmarks/onnx_heldout.py RUN_DIR",
    "recipe_cost.py": "times each paper recipe (minutes): python benchmarks/recipe_cost.py",
}


def main() -> int:
    folder = Path(__file__).parent
    failed = []
    for script in sorted(folder.glob("*.py")):
        if script.name in SKIP:
            continue
        if script.name in BY_HAND:
            print(f"\n=== {script.name}: skipped ({BY_HAND[script.name]}) ===", flush=True)
            continue
        print(f"\n=== {script.name} ===", flush=True)
        if subprocess.run([sys.executable, str(script)], check=False).returncode != 0:
            failed.append(script.name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
