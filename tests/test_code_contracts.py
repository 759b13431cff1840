"""The package's shape, checked on every run (the design map's layers, DESIGN.md):

* the library (data, descriptors, nn, potential, training and the ASE adapters) imports no
  MLflow, Dask or pydantic and nothing of the composition layer or the CLI;
* MLflow is imported only in ``tracking`` (and Dask only in ``distributed``), ``distributed``
  imports nothing of the workflows (``pipeline``) or of ``tracking``, ``tracking`` nothing of
  ``pipeline``, and nothing but ``cli`` imports ``cli``;
* no two subpackages import each other, directly or through others;
* no private name (``_x``) is imported from another module;
* descriptors are pluggable: ACSF (its class, its modules, its evaluator) is imported only in
  ``descriptors``; everything else goes through the protocol and the registry;
* ruff's pyflakes and import-order rules pass (configured in pyproject.toml).

Every ``import`` counts, also those inside functions: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "pesnet"
LIBRARY = {"data", "descriptors", "nn", "potential", "training", "calculator", "md",
           "neighbours", "metrics", "errors", "fileio", "io_format", "ase_plugin", "properties",
           "__init__", "_version"}
COMPOSITION = {"pipeline", "tracking", "distributed", "cli"}
#: external package → the only subpackages that may import it
EXTERNAL_HOMES = {"mlflow": {"tracking"}, "dask": {"distributed"}, "distributed": {"distributed"},
                  "pydantic": {"pipeline"}}
#: subpackage → pesnet subpackages it must not import
FORBIDDEN = {"distributed": {"pipeline", "tracking", "cli"}, "tracking": {"pipeline", "cli"},
             "pipeline": {"cli"}}


def _imports():
    """(module path, top-level part, imported module, imported name or None) of every import
    in the package."""
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        top = rel.parts[0].removesuffix(".py")
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield rel, top, alias.name, None
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    yield rel, top, node.module, alias.name


def test_layers_and_external_packages():
    problems = []
    for rel, top, module, _ in _imports():
        head, parts = module.split(".")[0], module.split(".")
        if head in EXTERNAL_HOMES and top not in EXTERNAL_HOMES[head]:
            problems.append(f"{rel} imports {module}")
        if head == "pesnet" and len(parts) > 1 and parts[1] != top:
            target = parts[1]
            if top in LIBRARY and target in COMPOSITION:
                problems.append(f"{rel} (library) imports {module}")
            if target in FORBIDDEN.get(top, ()):
                problems.append(f"{rel} ({top}) imports {module}")
    assert problems == []


def test_no_import_cycles_between_subpackages():
    edges = {}
    for _, top, module, _ in _imports():
        parts = module.split(".")
        if parts[0] == "pesnet" and len(parts) > 1 and parts[1] != top:
            edges.setdefault(top, set()).add(parts[1])

    def reaches(start, goal, seen):
        return any(n == goal or (n not in seen and reaches(n, goal, seen | {n}))
                   for n in edges.get(start, ()))

    cycles = sorted({tuple(sorted((a, b))) for a in edges for b in edges[a]
                     if reaches(b, a, {b})})
    assert cycles == []


def test_no_private_name_is_imported_from_another_module():
    private = [f"{rel}: {module}.{name}" for rel, _, module, name in _imports()
               if module.startswith("pesnet") and name and name.startswith("_")
               and not name.startswith("__")]
    assert private == []


#: modules of the ACSF kind, which only ``descriptors`` may import
ACSF_MODULES = {"pesnet.descriptors.acsf", "pesnet.descriptors.acsf_evaluator",
                "pesnet.descriptors.acsf_angular_evaluator", "pesnet.descriptors.angular",
                "pesnet.descriptors.angular_work_plan", "pesnet.descriptors.evaluation_tape",
                "pesnet.descriptors.radial"}


def test_descriptor_kinds_are_reached_through_the_registry():
    named = [f"{rel}: {module}.{name}" for rel, top, module, name in _imports()
             if top != "descriptors" and (module in ACSF_MODULES or (
                 module.startswith("pesnet") and name in ("ACSF", "ACSFEvaluator")))]
    assert named == []


def test_no_private_attribute_of_another_modules_object():
    """``obj._name`` only on ``self``/``cls``, for names the module defines itself, and
    namedtuple's public ``_replace``, ``_asdict``, ``_fields``, ``_make``: reaching into
    another module's (or library's) private state is a private name crossing a module
    boundary just as an import is. ``os._exit`` is public (documented; the underscore marks a
    low-level exit, not private state)."""
    allowed = {"_replace", "_asdict", "_fields", "_make", "_field_defaults", "_exit"}
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text())
        # a module's own private names (its classes' methods and attributes) are its business
        own = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)} | {
            n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)
            and isinstance(n.ctx, ast.Store)}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_")
                    and not node.attr.startswith("__") and node.attr not in allowed | own
                    and not (isinstance(node.value, ast.Name)
                             and node.value.id in ("self", "cls"))):
                problems.append(f"{path.relative_to(ROOT)}:{node.lineno} .{node.attr}")
    assert problems == []


def test_ruff_pyflakes_and_import_order():
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "pesnet",
                           "tests", "benchmarks", "examples"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
