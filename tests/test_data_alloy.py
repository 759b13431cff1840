"""The Cu–Au alloy recipe ``cuau-fcc`` and its shipped EMT data (data/cuau_emt.extxyz)."""

from __future__ import annotations

from collections import Counter
from itertools import islice
from pathlib import Path

import ase.io
import numpy as np
import pytest

from pesnet.data.calculators import make_calculator
from pesnet.data.recipes import run_recipe

SHIPPED = Path(__file__).resolve().parents[1] / "data" / "cuau_emt.extxyz"
COMPOSITIONS = [f"{x:g}" for x in np.arange(9) / 8]
ORDERED = ("L12_Cu3Au", "L10_CuAu", "L12_CuAu3")


def expected_counts(scale: float = 1.0) -> dict[str, int]:
    """{config_type: frames} the recipe makes at ``scale``."""
    n = lambda count: max(1, int(round(count * scale)))  # noqa: E731
    counts = {}
    for x in COMPOSITIONS:
        counts.update({f"ss_x{x}_rattled": n(6), f"ss_x{x}_md_300K": n(10),
                       f"ss_x{x}_md_600K": n(10), f"ss_x{x}_strained": n(6)})
    for phase in ORDERED:
        counts.update({f"{phase}_relaxed": 1, f"{phase}_rattled": n(8),
                       f"{phase}_strained": n(8), f"{phase}_md_600K": n(6)})
    counts.update({f"vacancy_x{x}": n(10) for x in ("0.25", "0.5", "0.75")})
    return counts


@pytest.fixture(scope="module")
def small():
    return list(run_recipe("cuau-fcc", make_calculator("emt"), seed=3, scale=0.05))


def test_recipe_is_reproducible(small):
    again = list(run_recipe("cuau-fcc", make_calculator("emt"), seed=3, scale=0.05))
    assert len(small) == len(again)
    for a, b in zip(small, again):
        assert a.get_chemical_symbols() == b.get_chemical_symbols()
        np.testing.assert_array_equal(a.positions, b.positions)
        np.testing.assert_array_equal(a.cell[:], b.cell[:])
        assert a.get_potential_energy() == b.get_potential_energy()
        assert a.info["config_type"] == b.info["config_type"]
    other = next(iter(run_recipe("cuau-fcc", make_calculator("emt"), seed=4, scale=0.05)))
    assert not np.array_equal(small[0].positions, other.positions)


def test_recipe_covers_both_elements_and_every_family(small):
    assert Counter(a.info["config_type"] for a in small) == expected_counts(0.05)
    for atoms in small:
        kind = atoms.info["config_type"]
        symbols = Counter(atoms.get_chemical_symbols())
        assert len(atoms) == (31 if kind.startswith("vacancy") else 32)
        if kind.startswith("ss_x"):
            x = float(kind.split("_")[1][1:])
            assert symbols["Au"] == round(32 * x) and symbols["Cu"] == 32 - round(32 * x)
    assert {"Cu", "Au"} <= {s for a in small for s in a.get_chemical_symbols()}
    phases = {a.info["config_type"]: Counter(a.get_chemical_symbols()) for a in small}
    assert phases["L12_Cu3Au_relaxed"] == {"Cu": 24, "Au": 8}
    assert phases["L10_CuAu_relaxed"] == {"Cu": 16, "Au": 16}
    assert phases["L12_CuAu3_relaxed"] == {"Cu": 8, "Au": 24}
    # the relaxed ordered cells are at EMT's minimum: no force, no stress
    for phase in ORDERED:
        relaxed = next(a for a in small if a.info["config_type"] == f"{phase}_relaxed")
        assert np.abs(relaxed.get_forces()).max() < 1e-2
        assert np.abs(relaxed.get_stress()).max() < 1e-3  # eV/Å³ (0.16 GPa)


def test_every_bulk_cell_carries_energy_forces_and_stress(small):
    for atoms in small:
        assert atoms.pbc.all()
        results = atoms.calc.results
        assert {"energy", "forces", "stress"} <= set(results)
        assert results["forces"].shape == (len(atoms), 3)
        assert np.isfinite(results["stress"]).all() and np.abs(results["stress"]).max() > 0


def test_shipped_file_ingests_with_every_family(tmp_path):
    from pesnet.data.dataset import Dataset
    from pesnet.data.ingest import ingest

    assert SHIPPED.stat().st_size < 5 * 1024 * 1024
    expected = expected_counts()
    assert ingest([SHIPPED], tmp_path / "cuau.h5") == sum(expected.values())
    with Dataset(tmp_path / "cuau.h5") as ds:
        assert Counter(ds.column("config_type").tolist()) == expected
        assert ds.elements == [29, 79]
        assert ds.column("has_stress").all() and ds.column("has_forces").all()


def test_shipped_file_starts_with_the_frames_its_command_makes():
    head = ase.io.read(SHIPPED, ":3")
    made = list(islice(run_recipe("cuau-fcc", make_calculator("emt"), seed=0), 3))
    for a, b in zip(head, made):
        assert a.get_chemical_symbols() == b.get_chemical_symbols()
        np.testing.assert_allclose(a.positions, b.positions, atol=1e-8)
        assert a.get_potential_energy() == pytest.approx(b.get_potential_energy(), abs=1e-8)
