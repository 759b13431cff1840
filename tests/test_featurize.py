"""Featurizing a dataset: the features file's contents, batches, statistics, checks."""

from __future__ import annotations

import importlib

import h5py
import numpy as np
import pytest
from ase.build import bulk, molecule

from pesnet.data import Dataset, DatasetWriter, split_indices
from pesnet.descriptors import ACSF, FeaturesFile, featurize
from pesnet.errors import ConfigurationError, DataFormatError, InputError

features_writer = importlib.import_module("pesnet.descriptors.features_writer")

ACSF_HCO_CU = ACSF(["H", "C", "O", "Cu"], 4.0, g2=[(0.5, 0.0), (2.0, 2.0)],
                   g4=[(0.02, 1.0, -1.0), (0.02, 2.0, 1.0)], g5=[(0.05, 1.0, 1.0)])


def _frames(n=7, seed=0):
    rng = np.random.default_rng(seed)
    frames = []
    for k in range(n):
        if k % 3 == 1:
            atoms = molecule("CH3CH2OH")
        else:
            atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((1, 1, 1 + k % 2))
        atoms.positions += rng.normal(0, 0.05, atoms.positions.shape)
        frames.append(atoms)
    return frames


def _write_dataset(path, frames):
    with DatasetWriter(path) as writer:
        for atoms in frames:
            writer.append(atoms.numbers, atoms.positions, atoms.cell[:], atoms.pbc,
                          energy=0.0, forces=np.zeros((len(atoms), 3)))
    return path


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return _write_dataset(tmp_path_factory.mktemp("feat") / "dataset.h5", _frames())


@pytest.fixture(scope="module")
def features64(dataset):
    out = dataset.parent / "features64.h5"
    featurize(dataset, out, ACSF_HCO_CU, derivative_dtype="float64", chunk_size=3)
    return out


def test_features_match_direct_computation(dataset, features64):
    with Dataset(dataset) as ds, FeaturesFile(features64) as ff:
        assert len(ff) == len(ds) and ff.acsf == ACSF_HCO_CU
        assert ff.labels == ACSF_HCO_CU.labels and ff.has_derivatives
        order = [5, 0, 1, 4]  # not sorted, not contiguous, with a contiguous run (0, 1)
        batch = ff.read_batch(order, standardise=False)
        assert batch.indices.tolist() == order
        for k, index in enumerate(order):
            atoms = ds[index]
            expected = ACSF_HCO_CU.compute(atoms, derivatives=True)
            a, b = batch.offsets[k], batch.offsets[k + 1]
            assert batch.numbers[a:b].tolist() == atoms.numbers.tolist()
            values = np.zeros((b - a, ff.n_features))
            for rows in batch.elements.values():
                mine = rows.config == k
                values[rows.rows[mine] - a] = rows.values[mine]
            np.testing.assert_array_equal(values, expected.values)
            blocks = slice(batch.block_offsets[k], batch.block_offsets[k + 1])
            np.testing.assert_array_equal(batch.centres[blocks] - a, expected.centres)
            np.testing.assert_array_equal(batch.neighbours[blocks] - a, expected.neighbours)
            np.testing.assert_array_equal(batch.derivatives[blocks], expected.derivatives)
            strain = batch.strain[a:b]
            assert batch.periodic[k] == atoms.pbc.any()
            if atoms.pbc.any():
                np.testing.assert_array_equal(strain, expected.strain_derivatives)
            else:
                assert not strain.any()


def test_statistics_cover_the_training_split(dataset, features64):
    train = split_indices(7, (0.8, 0.1, 0.1), 0).train
    with Dataset(dataset) as ds, FeaturesFile(features64) as ff:
        rows = np.concatenate([ACSF_HCO_CU.compute(ds[i]).values for i in train])
        numbers = np.concatenate([ds[i].numbers for i in train])
        stats = ff.stats
        assert ff.split == {"fractions": [0.8, 0.1, 0.1], "seed": 0, "n_train": len(train)}
        for z in (1, 6, 8, 29):
            mine = rows[numbers == z]
            assert stats[z].count == len(mine) > 0
            np.testing.assert_allclose(stats[z].mean, mine.mean(axis=0), rtol=1e-12, atol=1e-14)
            np.testing.assert_allclose(stats[z].std, mine.std(axis=0), rtol=1e-10, atol=1e-12)
        assert (stats[29].std == 0).any() and (stats[29].scale > 0).all()  # Cu sees no H


def test_standardised_batch_scales_values_and_derivatives_consistently(features64):
    with FeaturesFile(features64) as ff:
        raw = ff.read_batch(range(len(ff)), standardise=False)
        std = ff.read_batch(range(len(ff)))
        stats = ff.stats
        scale = np.ones((len(raw.numbers), ff.n_features))
        for z, rows in std.elements.items():
            expected = (raw.elements[z].values - stats[z].mean) / stats[z].scale
            np.testing.assert_allclose(rows.values, expected)
            scale[rows.rows] = stats[z].scale
        np.testing.assert_allclose(std.derivatives * scale[std.centres][:, :, None],
                                   raw.derivatives, rtol=1e-12)
        np.testing.assert_allclose(std.strain * scale[:, :, None, None], raw.strain, rtol=1e-12)


def _forces(batch, weights):
    """F_j = −Σ_i w_i · ∂G_i/∂r_j for per-atom weights w (N, F) (a linear 'network')."""
    forces = np.zeros((len(batch.numbers), 3))
    np.add.at(forces, batch.neighbours,
              -np.einsum("bf,bfx->bx", weights[batch.centres], batch.derivatives))
    return forces


def test_float32_derivatives_give_forces_within_1e6_of_float64(dataset, features64, tmp_path):
    out32 = tmp_path / "features32.h5"
    featurize(dataset, out32, ACSF_HCO_CU)  # float32 is the default
    with FeaturesFile(features64) as f64, FeaturesFile(out32) as f32:
        assert f32._file["derivatives/blocks"].dtype == np.float32
        b64, b32 = f64.read_batch(range(len(f64))), f32.read_batch(range(len(f32)))
        weights = np.random.default_rng(1).normal(size=(len(b64.numbers), f64.n_features))
        F64, F32 = _forces(b64, weights), _forces(b32, weights)
        # Every force component within 1e-6 of its configuration's RMS force.
        for k in range(len(b64.indices)):
            atoms = slice(b64.offsets[k], b64.offsets[k + 1])
            rms = np.sqrt(np.mean(F64[atoms] ** 2))
            assert np.abs(F32[atoms] - F64[atoms]).max() <= 1e-6 * rms
        virial64 = np.einsum("nf,nfab->ab", weights, b64.strain)
        virial32 = np.einsum("nf,nfab->ab", weights, b32.strain)
        assert np.abs(virial32 - virial64).max() <= 1e-6 * np.abs(virial64).max()


def test_float16_halves_the_derivatives_and_keeps_forces_within_1e3(dataset, features64,
                                                                      tmp_path):
    out16, out32 = tmp_path / "features16.h5", tmp_path / "features32.h5"
    featurize(dataset, out16, ACSF_HCO_CU, derivative_dtype="float16")
    featurize(dataset, out32, ACSF_HCO_CU)
    with FeaturesFile(features64) as f64, FeaturesFile(out16) as f16:
        assert f16.derivative_dtype == np.float16
        assert f16._file["strain"].shape[1:] == (f16.n_features, 6)  # symmetric part only
        for f in (f64, f16):
            f.min_feature_std = 1e-5  # float16 resolves these features (training refuses less)
        b64, b16 = f64.read_batch(range(len(f64))), f16.read_batch(range(len(f16)))
        np.testing.assert_array_equal(b16.strain, b16.strain.transpose(0, 1, 3, 2))
        weights = np.random.default_rng(1).normal(size=(len(b64.numbers), f64.n_features))
        F64, F16 = _forces(b64, weights), _forces(b16, weights)
        for k in range(len(b64.indices)):
            atoms = slice(b64.offsets[k], b64.offsets[k + 1])
            rms = np.sqrt(np.mean(F64[atoms] ** 2))
            assert np.sqrt(np.mean((F16[atoms] - F64[atoms]) ** 2)) <= 1e-3 * rms
        virial64 = np.einsum("nf,nfab->ab", weights, b64.strain)
        virial16 = np.einsum("nf,nfab->ab", weights, b16.strain)
        # Each stored entry is within 2⁻¹¹ of itself, so the sum within that of Σ|w·∂G/∂ε|.
        bound = np.einsum("nf,nfab->ab", np.abs(weights), np.abs(b64.strain))
        assert (np.abs(virial16 - virial64) <= 2.0**-11 * bound).all()
    with h5py.File(out16) as half, h5py.File(out32) as single:
        assert half["derivatives/blocks"].nbytes == 0.5 * single["derivatives/blocks"].nbytes
        assert half["strain"].nbytes == single["strain"].nbytes / 3


def test_float16_overflow_is_refused_naming_the_configuration(tmp_path, monkeypatch):
    # A Gaussian shell of width 2e-6 Å one width inside the nearest-neighbour distance of
    # perfect fcc Cu (configuration 1): |∂G/∂r| ≈ 2e5 /Å per bond.
    perfect = bulk("Cu", "fcc", a=3.61)
    frames = [_frames(1)[0], perfect]
    dataset = _write_dataset(tmp_path / "d.h5", frames)
    eta = 1e11
    steep = ACSF(["Cu"], 4.0, g2=[(eta, 3.61 / np.sqrt(2) - 1 / np.sqrt(2 * eta))], g4=[])
    out = tmp_path / "f.h5"
    with pytest.raises(InputError, match=r"d\.h5: configuration 1: .*float16"):
        featurize(dataset, out, steep, derivative_dtype="float16")
    assert not out.exists()
    featurize(dataset, out, steep)  # float32 holds it


def test_training_refuses_float16_with_unresolved_features(dataset, tmp_path):
    from pesnet.training.settings import TrainSettings
    from pesnet.training.trainer import train_potential

    out16 = tmp_path / "features16.h5"
    featurize(dataset, out16, ACSF_HCO_CU, derivative_dtype="float16")
    with pytest.raises(InputError, match="float16 derivatives resolve features"):
        train_potential(out16, TrainSettings(min_feature_std=0.0, epochs=1), dataset_path=dataset)


def test_small_flushes_give_the_same_file(dataset, features64, tmp_path, monkeypatch):
    monkeypatch.setattr(features_writer, "FLUSH_FLOATS", 1)  # flush after every configuration
    out = tmp_path / "streamed.h5"
    featurize(dataset, out, ACSF_HCO_CU, derivative_dtype="float64", chunk_size=1)
    with h5py.File(out) as a, h5py.File(features64) as b:
        names = []
        a.visit(names.append)
        assert names and set(names) == set(_names(b))
        for name in names:
            if name.endswith(("/mean", "/std")):  # merged in another order: rounding differs
                np.testing.assert_allclose(a[name][()], b[name][()], rtol=1e-12, err_msg=name)
            elif isinstance(a[name], h5py.Dataset):
                np.testing.assert_array_equal(a[name][()], b[name][()], err_msg=name)


def _names(f):
    names = []
    f.visit(names.append)
    return names


def test_values_only(dataset, tmp_path):
    out = tmp_path / "values.h5"
    featurize(dataset, out, ACSF_HCO_CU, derivatives=False)
    with FeaturesFile(out) as ff:
        assert not ff.has_derivatives
        batch = ff.read_batch([2, 3])
        assert batch.derivatives is None and batch.centres is None and batch.strain is None
        assert sum(len(r.rows) for r in batch.elements.values()) == len(batch.numbers)


def test_checks_descriptor_and_dataset(dataset, features64, tmp_path):
    with FeaturesFile(features64) as ff:
        ff.check_descriptor(ACSF.from_params(ACSF_HCO_CU.params))
        ff.check_dataset(dataset)
        other = ACSF(["H", "C", "O", "Cu"], 4.5, g2=[(0.5, 0.0)])
        with pytest.raises(DataFormatError, match="re-run `pesnet featurize`"):
            ff.check_descriptor(other)
        changed = _write_dataset(tmp_path / "other.h5", _frames(seed=1))
        with pytest.raises(DataFormatError, match="SHA-256"):
            ff.check_dataset(changed)


def test_unknown_element_names_dataset_and_configuration(tmp_path):
    frames = _frames(4)
    frames[2].numbers[0] = 26  # Fe
    path = _write_dataset(tmp_path / "fe.h5", frames)
    out = tmp_path / "features.h5"
    with pytest.raises(ConfigurationError, match=r"fe\.h5, configuration 2: element Fe \(Z=26\)"):
        featurize(path, out, ACSF_HCO_CU)
    assert not out.exists() and list(tmp_path.iterdir()) == [path]


def test_not_a_features_file(dataset):
    with pytest.raises(DataFormatError, match="not a pesnet features file"):
        FeaturesFile(dataset)
