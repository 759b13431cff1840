"""The served model's request and answer formats (no server: the functions behind it)."""

from __future__ import annotations

import io

import ase.io
import numpy as np
import pytest

from pesnet.errors import InputError
from pesnet.tracking.serving import example_text, predict_records, structures_from_rows


@pytest.fixture(scope="module")
def potential(cu_features):
    from pesnet.training.settings import TrainSettings
    from pesnet.training.trainer import train_potential

    settings = TrainSettings(hidden=(4,), n_members=2, epochs=1, batch_size=8)
    return train_potential(cu_features / "features.h5", settings).potential


def _extxyz(frames) -> str:
    buffer = io.StringIO()
    ase.io.write(buffer, frames, format="extxyz")
    return buffer.getvalue()


def test_extxyz_rows_give_every_frame(cu_features):
    frames = ase.io.read(cu_features / "cu.extxyz", ":3")
    found = structures_from_rows([{"extxyz": _extxyz(frames[:2])}, {"extxyz": _extxyz(frames[2])}])
    assert [(k, j) for k, j, _ in found] == [(0, 0), (0, 1), (1, 0)]
    assert np.allclose(found[2][2].positions, frames[2].positions)


def test_json_rows_with_and_without_cell():
    rows = [{"numbers": [1, 1], "positions": [[0, 0, 0], [0.74, 0, 0]]},
            {"numbers": [29], "positions": [[0, 0, 0]],
             "cell": [[0, 1.8, 1.8], [1.8, 0, 1.8], [1.8, 1.8, 0]], "pbc": None}]
    (_, _, h2), (_, _, cu) = structures_from_rows(rows)
    assert not h2.pbc.any() and cu.pbc.all() and cu.cell.rank == 3


@pytest.mark.parametrize("row, message", [
    ({"extxyz": "not a structure"}, "row 0: cannot read the extxyz text"),
    ({"extxyz": ""}, "row 0: extxyz must be non-empty text"),
    ({"numbers": [1, 1], "positions": [[0, 0, 0]]}, "2 numbers but 1 positions"),
    ({"numbers": [1]}, "give extxyz, or numbers and positions"),
    ({"numbers": [1], "positions": [[0, 0, float("inf")]]}, "must be finite"),
    ({"numbers": [1], "positions": [[0, 0, 0]], "cell": [1, 2]}, "cell must be 3×3"),
])
def test_bad_rows_name_the_row(row, message):
    with pytest.raises(InputError, match=message):
        structures_from_rows([row])


def test_answers_match_the_potential(potential, cu_features):
    frame = ase.io.read(cu_features / "cu.extxyz", "0")
    (answer,) = predict_records(potential, [{"extxyz": _extxyz(frame)}])
    expected = potential.predict(frame, stress=True)
    assert answer["n_atoms"] == len(frame)
    assert answer["energy"] == pytest.approx(float(expected.energy[0]))
    assert answer["energy_std"] == pytest.approx(float(expected.energy_std[0]))
    assert np.allclose(answer["forces"], expected.forces)
    assert np.allclose(answer["forces_std"], expected.forces_std)
    assert np.allclose(answer["energies_std"], expected.energies_std)
    assert np.allclose(answer["stress"], expected.stress[0])
    import json

    json.dumps(answer, allow_nan=False)  # plain JSON


def test_molecules_have_no_stress(potential):
    (answer,) = predict_records(potential, [{"numbers": [29, 29],
                                             "positions": [[0, 0, 0], [2.5, 0, 0]]}])
    assert "stress" not in answer and len(answer["forces"]) == 2


def test_example_text_has_no_labels(cu_features):
    frame = ase.io.read(cu_features / "cu.extxyz", "0")
    text = example_text(frame)
    assert "forces" not in text and "energy" not in text
    back = ase.io.read(io.StringIO(text), format="extxyz")
    assert np.allclose(back.positions, frame.positions) and back.calc is None
