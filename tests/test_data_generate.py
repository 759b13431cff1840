"""Reference-data generation: reproducible, labelled, and the calculator registry."""

from __future__ import annotations

import ase.io
import numpy as np
import pytest

from pesnet.cli.main import main
from pesnet.data.calculators import available_calculators, make_calculator, register_calculator
from pesnet.data.recipes import run_recipe
from pesnet.errors import InputError


def test_cu_recipe_is_reproducible_and_labelled():
    first = list(run_recipe("cu-fcc", make_calculator("emt"), seed=3, scale=0.02))
    again = list(run_recipe("cu-fcc", make_calculator("emt"), seed=3, scale=0.02))
    other = list(run_recipe("cu-fcc", make_calculator("emt"), seed=4, scale=0.02))
    kinds = {a.info["config_type"] for a in first}
    assert {"bulk_md_300K", "bulk_md_1200K", "bulk_strained", "vacancy_md_300K",
            "slab111_md_300K"} <= kinds
    assert len(first) == len(again)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a.positions, b.positions)
        assert a.get_potential_energy() == b.get_potential_energy()
    assert not np.array_equal(first[0].positions, other[0].positions)
    vacancy = [a for a in first if a.info["config_type"].startswith("vacancy")]
    assert all(len(a) == 31 for a in vacancy)
    slab = [a for a in first if a.info["config_type"].startswith("slab")][0]
    assert slab.get_cell()[2, 2] > 15  # vacuum along z
    # hotter MD samples larger forces on average
    hot = np.mean([np.abs(a.get_forces()).mean() for a in first if "1200K" in a.info["config_type"]])
    cold = np.mean([np.abs(a.get_forces()).mean() for a in first if a.info["config_type"] == "bulk_md_300K"])
    assert hot > cold


def test_registry_names_and_errors():
    names = available_calculators()
    assert {"emt", "lj", "gfn2-xtb"} <= set(names)
    with pytest.raises(InputError, match="unknown calculator 'nope'"):
        make_calculator("nope")
    from ase.calculators.lj import LennardJones

    register_calculator("lj-argon", lambda: LennardJones(sigma=3.4, epsilon=0.0104), "argon")
    assert isinstance(make_calculator("lj-argon"), LennardJones)


def test_cli_generate_writes_extxyz_then_ingests(tmp_path, capsys):
    out = tmp_path / "cu.extxyz"
    assert main(["generate", "cu-fcc", "--calculator", "emt", "--seed", "1", "--scale", "0.02",
                 "-o", str(out)]) == 0
    frames = ase.io.read(out, ":")
    assert len(frames) > 10 and all("forces" in a.calc.results for a in frames)
    assert main(["ingest", str(out), "-o", str(tmp_path / "cu.h5"), "--quiet"]) == 0
    assert main(["generate", "--list"]) == 0
    assert "cu-fcc" in capsys.readouterr().out
    assert main(["generate", "cu-fcc", "--calculator", "bogus", "-o", str(out)]) == 1
    assert "unknown calculator 'bogus'" in capsys.readouterr().err


def test_shipped_dataset_matches_its_recipe_head(tmp_path):
    """The shipped file starts with the frames the documented command makes."""
    from pathlib import Path

    shipped = Path(__file__).resolve().parents[1] / "data" / "cu_emt.extxyz"
    head = ase.io.read(shipped, ":3")
    assert len(ase.io.read(shipped, ":")) >= 300
    assert shipped.stat().st_size < 5 * 1024 * 1024
    from itertools import islice

    made = list(islice(run_recipe("cu-fcc", make_calculator("emt"), seed=0), 3))
    for a, b in zip(head, made):
        np.testing.assert_allclose(a.positions, b.positions, atol=1e-8)
        assert a.get_potential_energy() == pytest.approx(b.get_potential_energy(), abs=1e-8)
