"""What importing pesnet costs: the calculator and the command line load no torch (vesin
imports it when installed: 3.8 s measured), no MLflow (~1.5 s), no Dask and no pydantic.

torch and cupy are stood in for by packages that raise on import, so the test means the same
on a machine without them.
"""

from __future__ import annotations

import os
import subprocess
import sys

CHECK = """
import sys
{imports}
from ase.build import bulk
from pesnet.neighbours import neighbour_pairs
neighbour_pairs(bulk("Cu", cubic=True), 4.0)       # vesin really used
heavy = [m for m in ("torch", "cupy", "mlflow", "dask", "distributed", "pydantic")
         if m in sys.modules]
print(",".join(heavy))
"""


def _loaded(tmp_path, imports: str) -> str:
    for name in ("torch", "cupy"):
        (tmp_path / name).mkdir(exist_ok=True)
        (tmp_path / name / "__init__.py").write_text(f"raise RuntimeError('{name} imported')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", CHECK.format(imports=imports)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_calculator_imports_no_torch_mlflow_dask_or_pydantic(tmp_path):
    assert _loaded(tmp_path, "import pesnet.calculator, pesnet.md, pesnet.potential.io") == ""


def test_the_command_line_parser_imports_no_heavy_package(tmp_path):
    assert _loaded(tmp_path, "from pesnet.cli.main import build_parser\nbuild_parser()") == ""
