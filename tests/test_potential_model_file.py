"""A damaged model file is refused with one line, never used, never a traceback (issue 12).

Each test saves a tiny valid model, damages one dataset or attribute with h5py, and expects
:class:`~pesnet.errors.DataFormatError` saying ``<path>: damaged model file (...)`` in one
line. A hypothesis suite applies random single mutations; a loaded file must predict finite
numbers.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import tracemalloc
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pesnet.cli.main import main
from pesnet.errors import DataFormatError
from pesnet.potential.io import load_model, save_model
from tests.potential_helpers import random_potential, water_box

N_MEMBERS, HIDDEN = 2, 4
ELEMENTS = (1, 8)
# every dataset of the template: networks/<Sym>/W0 (M, F, 4), b0 (M, 4), W1 (M, 4, 1),
# b1 (M, 1); scalers/<Sym>/mean, scale (F,); reference_energies (2,)
DATASETS = [f"networks/{s}/{a}" for s in ("H", "O") for a in ("W0", "b0", "W1", "b1")] + [
    f"scalers/{s}/{a}" for s in ("H", "O") for a in ("mean", "scale")] + ["reference_energies"]
JSON_ATTRIBUTES = ["/descriptor", "/elements", "/calibration", "/metadata", "/labels",
                   "networks/H/config", "networks/O/config"]


def make_template(path: Path) -> Path:
    """A valid 2-member H/O model with calibration and metadata, saved at ``path``."""
    potential = random_potential(elements=ELEMENTS, n_members=N_MEMBERS, hidden=(HIDDEN,))
    potential.calibration = {"energy": 1.5, "forces": 0.7}
    potential.metadata = {"seeds": [1, 2], "note": "template"}
    return save_model(potential, path)


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    return make_template(tmp_path_factory.mktemp("template") / "model.h5")


@pytest.fixture
def model(template, tmp_path) -> Path:
    """A fresh copy of the template to damage."""
    return Path(shutil.copy(template, tmp_path / "model.h5"))


def assert_refused(path, *fragments):
    """Loading ``path`` raises DataFormatError with one line naming the damage."""
    with pytest.raises(DataFormatError) as info:
        load_model(path)
    message = str(info.value)
    assert "\n" not in message and "\r" not in message, message
    assert message.startswith(f"{path}: damaged model file ("), message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


def split_name(name):
    """('networks/H', 'W0') from 'networks/H/W0'; ('/', 'descriptor') from '/descriptor'."""
    parent, _, leaf = name.rpartition("/")
    return parent or "/", leaf


def replace_dataset(path, name, data):
    with h5py.File(path, "r+") as f:
        parent, leaf = split_name(name)
        del f[parent][leaf]
        f[parent].create_dataset(leaf, data=data)


def set_value(path, name, position, value):
    """Set one element (flat ``position``) of dataset ``name`` to ``value``."""
    with h5py.File(path, "r+") as f:
        data = f[name][()]
        data.reshape(-1)[position % data.size] = value
        f[name][...] = data


def set_attribute(path, name, value):
    with h5py.File(path, "r+") as f:
        parent, leaf = split_name(name)
        f[parent].attrs[leaf] = value


def json_attribute(path, name):
    with h5py.File(path, "r") as f:
        parent, leaf = split_name(name)
        return json.loads(f[parent].attrs[leaf])


def edit_json(path, name, edit):
    """Replace JSON attribute ``name`` by ``edit(parsed value)`` (or the value it edited)."""
    value = json_attribute(path, name)
    result = edit(value)
    set_attribute(path, name, json.dumps(value if result is None else result))


def n_features(path):
    return json_attribute(path, "networks/H/config")["layer_sizes"][0]


# -- the template itself ------------------------------------------------------------------
def test_template_loads_and_predicts(model):
    potential = load_model(model)
    assert potential.calibration == {"energy": 1.5, "forces": 0.7}
    assert np.isfinite(potential.predict(water_box(1, n_molecules=2)).energy).all()


def test_files_without_metadata_or_labels_still_load(model):
    with h5py.File(model, "r+") as f:
        del f.attrs["metadata"], f.attrs["labels"]
    assert load_model(model).metadata == {}


def test_float32_networks_load(tmp_path):
    potential = random_potential(elements=ELEMENTS, n_members=N_MEMBERS, hidden=(HIDDEN,))
    potential.networks = {z: net.astype(np.float32) for z, net in potential.networks.items()}
    loaded = load_model(save_model(potential, tmp_path / "model32.h5"))
    assert loaded.networks[1].dtype == np.float32


# -- item 2: non-finite numbers --------------------------------------------------------------
@pytest.mark.parametrize("name", ["networks/H/W0", "networks/O/b0", "networks/H/W1",
                                  "networks/O/b1", "scalers/H/mean", "scalers/O/scale",
                                  "reference_energies"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_array_is_refused(model, name, bad):
    set_value(model, name, 1, bad)
    assert_refused(model, name.split("/")[-1])


@pytest.mark.parametrize("key", ["energy", "forces"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_calibration_is_refused(model, key, bad):
    edit_json(model, "/calibration", lambda c: c.__setitem__(key, bad))
    assert_refused(model, "calibration")


def test_float32_overflow_is_refused(model):
    # 1e300 is finite in the file but inf in the float32 network the config asks for
    edit_json(model, "networks/H/config", lambda c: c.__setitem__("dtype", "float32"))
    set_value(model, "networks/H/W0", 0, 1e300)
    assert_refused(model, "W0")


# -- item 3: calibration, elements, JSON attributes ----------------------------------------
@pytest.mark.parametrize("calibration", [
    {"energy": "big", "forces": 1.0}, {"energy": -1.0, "forces": 1.0}, [1.0, 2.0], "1.0",
    {"energy": None, "forces": 1.0}, {"energy": True, "forces": 1.0}, {"energy": [1.0]},
    {"energy": 1.0, "spread": 2.0}, {"energy": 10 ** 400}, None])
def test_bad_calibration_is_refused(model, calibration):
    set_attribute(model, "/calibration", json.dumps(calibration))
    assert_refused(model, "calibration")


@pytest.mark.parametrize("elements", [[0, 8], [1, 200], [1, 1, 8], [-1, 8], [1, 8, 6], [1],
                                      [1.5, 8], ["H", "O"], "1,8", 8, {"1": 1}, [], [True, 8]])
def test_bad_elements_are_refused(model, elements):
    set_attribute(model, "/elements", json.dumps(elements))
    assert_refused(model, "elements")


@pytest.mark.parametrize("name", JSON_ATTRIBUTES)
@pytest.mark.parametrize("value", [np.array([b"{}", b"[]"]), 5, np.array([1.0, 2.0]),
                                   "{not json", "", b"\xff\xfe"])
def test_non_json_attribute_is_refused(model, name, value):
    set_attribute(model, name, value)
    assert_refused(model, name.split("/")[-1])


OPTIONAL_ATTRIBUTES = ("/metadata", "/labels")  # informational: absent is fine


@pytest.mark.parametrize("name", [n for n in JSON_ATTRIBUTES if n not in OPTIONAL_ATTRIBUTES])
def test_missing_attribute_is_refused(model, name):
    with h5py.File(model, "r+") as f:
        parent, leaf = split_name(name)
        del f[parent].attrs[leaf]
    assert_refused(model, name.split("/")[-1])


@pytest.mark.parametrize("metadata", [[1, 2], "notes", 3, None])
def test_metadata_must_be_an_object(model, metadata):
    set_attribute(model, "/metadata", json.dumps(metadata))
    assert_refused(model, "metadata")


def test_metadata_contents_are_not_validated(model):
    set_attribute(model, "/metadata", json.dumps({"seeds": "whatever", "split": [None]}))
    assert load_model(model).metadata["seeds"] == "whatever"


@pytest.mark.parametrize("version", ["abc", np.array([1, 1]), 1.5])
def test_bad_format_version_is_refused(model, version):
    set_attribute(model, "/format_version", version)
    with pytest.raises(DataFormatError) as info:
        load_model(model)
    assert "\n" not in str(info.value) and str(model) in str(info.value)


@pytest.mark.parametrize("edit", [
    lambda d: d.__setitem__("cutoff", "abc"), lambda d: d.__setitem__("cutoff", [1.0]),
    lambda d: d.__setitem__("cutoff", None), lambda d: d.__setitem__("elements", None),
    lambda d: d.__setitem__("elements", [float("inf")]),
    lambda d: d.__setitem__("elements", [float("nan")]),
    lambda d: d.__setitem__("elements", [1, 8, 6]), lambda d: d.__setitem__("g2", "xyz"),
    lambda d: d.__setitem__("g2", [[1.0, "x"]]), lambda d: d.__setitem__("g4", {"a": 1}),
    lambda d: d.__setitem__("g3", [[1.0], 2.0]), lambda d: d.__setitem__("angular_cutoff", "x"),
    lambda d: d.__setitem__("kind", "soap"), lambda d: d.__setitem__("extra", 1),
    lambda d: d.__setitem__("g2", d["g2"][:1]), lambda d: d.__delitem__("cutoff"), lambda d: [d]])
def test_garbage_descriptor_is_refused(model, edit):
    edit_json(model, "/descriptor", edit)
    assert_refused(model, "descriptor")


# -- item 3: arrays of the wrong shape or dtype, missing datasets --------------------------
@pytest.mark.parametrize("name", ["scalers/H/mean", "scalers/O/scale"])
@pytest.mark.parametrize("shape", [(1,), "F+1", "Fx2", ()])
def test_scaler_of_wrong_shape_is_refused(model, name, shape):
    f = n_features(model)
    shape = {"F+1": (f + 1,), "Fx2": (f, 2)}.get(shape, shape)
    replace_dataset(model, name, np.ones(shape))
    assert_refused(model, name.split("/")[-1])


@pytest.mark.parametrize("bad", [0.0, -0.0, -1.0, 1e-320])
def test_non_positive_scale_is_refused(model, bad):
    set_value(model, "scalers/H/scale", 2, bad)
    assert_refused(model, "scale")


@pytest.mark.parametrize("name", DATASETS)
def test_missing_dataset_is_refused(model, name):
    with h5py.File(model, "r+") as f:
        del f[name]
    assert_refused(model, name.split("/")[-1])


@pytest.mark.parametrize("group", ["networks/H", "scalers/O", "networks", "scalers"])
def test_missing_group_is_refused(model, group):
    with h5py.File(model, "r+") as f:
        del f[group]
    assert_refused(model)


def test_unexpected_network_array_is_refused(model):
    with h5py.File(model, "r+") as f:
        f["networks/H"].create_dataset("W2", data=np.ones((N_MEMBERS, 1, 1)))
    assert_refused(model, "W2")


@pytest.mark.parametrize("name", ["networks/H/W0", "networks/O/b1", "scalers/H/mean",
                                  "reference_energies"])
@pytest.mark.parametrize("kind", ["bytes", "string", "complex", "int", "bool"])
def test_array_of_wrong_dtype_is_refused(model, name, kind):
    with h5py.File(model, "r") as f:
        data = f[name][()]
    if kind == "bytes":
        data = np.full(data.shape, b"1.0")
    elif kind == "string":  # variable-length strings read back as object arrays
        data = np.array(np.full(data.shape, "1.0"), dtype=h5py.string_dtype())
    elif kind == "complex":
        data = data + 1j
    else:
        data = (data > 0).astype(kind)
    replace_dataset(model, name, data)
    assert_refused(model, name.split("/")[-1])


@pytest.mark.parametrize("name, shape", [
    ("networks/H/W0", (N_MEMBERS, 3, HIDDEN)), ("networks/H/W0", (N_MEMBERS + 1, "F", HIDDEN)),
    ("networks/H/b0", (N_MEMBERS, HIDDEN + 1)), ("networks/O/W1", (N_MEMBERS, HIDDEN)),
    ("networks/O/b1", (N_MEMBERS,)), ("networks/O/b1", (N_MEMBERS, 1, 1)),
    ("reference_energies", (3,)), ("reference_energies", (1,)), ("reference_energies", ()),
    ("reference_energies", (2, 1))])
def test_array_of_wrong_shape_is_refused(model, name, shape):
    shape = tuple(n_features(model) if n == "F" else n for n in shape)
    replace_dataset(model, name, np.ones(shape))
    assert_refused(model, name.split("/")[-1])


def test_consistent_but_wrong_output_width_is_refused(model):
    # config and arrays agree on a last layer of width 2: still not a potential
    edit_json(model, "networks/O/config", lambda c: c["layer_sizes"].__setitem__(-1, 2))
    replace_dataset(model, "networks/O/W1", np.ones((N_MEMBERS, HIDDEN, 2)))
    replace_dataset(model, "networks/O/b1", np.ones((N_MEMBERS, 2)))
    assert_refused(model, "width")


def test_network_input_width_must_match_descriptor(model):
    f = n_features(model)
    edit_json(model, "networks/H/config", lambda c: c["layer_sizes"].__setitem__(0, f - 1))
    replace_dataset(model, "networks/H/W0", np.ones((N_MEMBERS, f - 1, HIDDEN)))
    assert_refused(model, "n_features")


def test_networks_must_agree_on_ensemble_size(model):
    f = n_features(model)
    edit_json(model, "networks/O/config", lambda c: c.__setitem__("n_members", 1))
    for name, shape in (("W0", (1, f, HIDDEN)), ("b0", (1, HIDDEN)), ("W1", (1, HIDDEN, 1)),
                        ("b1", (1, 1))):
        replace_dataset(model, f"networks/O/{name}", np.ones(shape))
    assert_refused(model, "members")


# -- item 3: absurd sizes in the config are checked against the arrays, never allocated ----
@pytest.mark.parametrize("edit, fragment", [
    (lambda c: c["layer_sizes"].__setitem__(1, 1_000_000), "layer_sizes"),
    (lambda c: c["layer_sizes"].insert(1, 1_000_000), "layer_sizes"),
    (lambda c: c.__setitem__("n_members", 1_000_000_000), "n_members"),
    (lambda c: c.__setitem__("n_members", 0), "n_members"),
    (lambda c: c.__setitem__("n_members", -2), "n_members"),
    (lambda c: c.__setitem__("n_members", 2.0), "n_members"),
    (lambda c: c.__setitem__("n_members", "2"), "n_members"),
    (lambda c: c.__setitem__("layer_sizes", [10 ** 30, 1]), "layer_sizes"),
    (lambda c: c.__setitem__("layer_sizes", "big"), "layer_sizes"),
    (lambda c: c["layer_sizes"].__setitem__(1, 0), "layer_sizes"),
    (lambda c: c["layer_sizes"].__setitem__(1, -4), "layer_sizes"),
    (lambda c: c["layer_sizes"].__setitem__(1, None), "layer_sizes"),
    (lambda c: c.__delitem__("layer_sizes"), "layer_sizes"),
    (lambda c: c.__delitem__("n_members"), "n_members"),
    (lambda c: c.__setitem__("dtype", "complex128"), "dtype"),
    (lambda c: c.__setitem__("dtype", 7), "dtype"),
    (lambda c: c.__setitem__("activations", ["no-such"]), "activation"),
    (lambda c: c.__setitem__("activations", "tanh"), "activations"),
    (lambda c: c.__setitem__("activations", [{"name": "elu", "alpha": "x"}]), "activation"),
    (lambda c: c.__setitem__("activations", [{"name": "elu", "alpha": float("inf")}]),
     "activation"),
    (lambda c: c.__setitem__("activations", [{"name": "elu", "beta": 1}]), "activation"),
    (lambda c: c.__setitem__("activations", [{"name": "elu", "alpha": 10 ** 400}]),
     "activation"),
    (lambda c: c.__setitem__("activations", ["tanh", "tanh"]), "activation"),
    (lambda c: c.__setitem__("output_activation", 3), "activation"),
    (lambda c: c.__setitem__("seed", "x"), "seed"),
    (lambda c: c.__setitem__("seed", -5), "seed"),
    (lambda c: c.__setitem__("member_offset", "x"), "member_offset"),
    (lambda c: c.__setitem__("init", ["x"]), "init"),
    (lambda c: [c], "config")])
def test_absurd_network_config_is_refused(model, edit, fragment):
    edit_json(model, "networks/H/config", edit)
    assert_refused(model, fragment)


@pytest.mark.parametrize("edit", [lambda c: c["layer_sizes"].__setitem__(1, 1_000_000),
                                  lambda c: c.__setitem__("n_members", 100_000)])
def test_config_sizes_are_compared_not_allocated(model, edit):
    # the width-10^6 (or 10^5-member) network would take >50 MB: refused before allocating
    edit_json(model, "networks/H/config", edit)
    tracemalloc.start()
    try:
        with pytest.raises(DataFormatError):
            load_model(model)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20e6, f"{peak / 1e6:.0f} MB allocated to refuse the file"
    assert_refused(model, "networks/H/W0")


def test_unallocated_huge_dataset_is_refused(model):
    # a chunked dataset whose chunks were never written claims ~1 TB in a few bytes of file
    with h5py.File(model, "r+") as f:
        del f["reference_energies"]
        f.create_dataset("reference_energies", shape=(2 ** 37,), dtype="f8", chunks=(2 ** 16,))
    assert_refused(model, "reference_energies")


def test_consistent_but_unallocated_huge_network_is_refused(model):
    # config and arrays agree on a hidden width of 10^6, but the file holds no such data
    f, wide = n_features(model), 10 ** 6
    edit_json(model, "networks/H/config", lambda c: c["layer_sizes"].__setitem__(1, wide))
    with h5py.File(model, "r+") as h5:
        for name, shape in (("W0", (N_MEMBERS, f, wide)), ("b0", (N_MEMBERS, wide)),
                            ("W1", (N_MEMBERS, wide, 1))):
            del h5[f"networks/H/{name}"]
            h5.create_dataset(f"networks/H/{name}", shape=shape, dtype="f8", chunks=True)
    assert_refused(model, "W0")


def test_external_link_is_refused(model, template):
    with h5py.File(model, "r+") as f:
        del f["reference_energies"]
        f["reference_energies"] = h5py.ExternalLink(str(template), "/reference_energies")
    assert_refused(model, "reference_energies")


# -- the CLI: one line, exit 1 ------------------------------------------------------------
def test_evaluate_refuses_nan_weights(cu_features, tmp_path, capsys):
    potential = random_potential(elements=(29,), n_members=2, hidden=(4,))
    potential.networks[29].weights[0][0, 0, 0] = np.nan
    path = save_model(potential, tmp_path / "nan.h5")
    code = main(["evaluate", str(path), str(cu_features / "cu.h5"), "--json"])
    captured = capsys.readouterr()
    assert code == 1, captured.out
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    assert lines[0].startswith("pesnet evaluate: error: ") and "damaged model file" in lines[0]
    assert "W0" in lines[0]


# -- property: any single mutation loads cleanly or is refused in one line -----------------
FLOATS = st.floats(allow_nan=True, allow_infinity=True, width=64)
JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10 ** 12, 10 ** 12),
                         st.floats(allow_nan=True, allow_infinity=True),
                         st.text(max_size=5))
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)),
    max_leaves=6)


@st.composite
def dataset_mutation(draw):
    """(description, mutate(path), must_refuse) for one dataset."""
    name = draw(st.sampled_from(DATASETS))
    kind = draw(st.sampled_from(["shape", "dtype", "nonfinite", "delete", "scalar", "huge",
                                 "same"]))
    if kind == "shape":
        shape = tuple(draw(st.lists(st.integers(0, 7), max_size=4)))
        return (name, kind, shape), lambda p: replace_dataset(p, name, np.ones(shape)), None
    if kind == "dtype":
        dtype = draw(st.sampled_from(["S3", "c16", "i8", "u1", "bool", "str"]))
        data = (np.array([["1", "2"]], dtype=h5py.string_dtype()) if dtype == "str"
                else np.ones((1, 2), dtype=dtype))
        return (name, kind, dtype), lambda p: replace_dataset(p, name, data), True
    if kind == "nonfinite":
        position = draw(st.integers(0, 10 ** 6))
        value = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
        return (name, kind, position, value), lambda p: set_value(p, name, position, value), True
    if kind == "delete":
        return (name, kind), lambda p: delete_dataset(p, name), True
    if kind == "scalar":
        value = draw(FLOATS)
        return (name, kind, value), lambda p: replace_dataset(p, name, np.float64(value)), True
    if kind == "huge":
        return (name, kind), lambda p: replace_dataset_unallocated(p, name), True
    # the same values again, maybe in float32 (a model may be stored so): it must load
    dtype = draw(st.sampled_from(["f8", "f4"]))
    return (name, kind, dtype), lambda p: rewrite_same(p, name, dtype), False


def delete_dataset(path, name):
    with h5py.File(path, "r+") as f:
        del f[name]


def replace_dataset_unallocated(path, name):
    with h5py.File(path, "r+") as f:
        del f[name]
        f.create_dataset(name, shape=(2 ** 20, 2 ** 20), dtype="f8", chunks=(64, 64))


def rewrite_same(path, name, dtype):
    with h5py.File(path, "r") as f:
        data = f[name][()]
    replace_dataset(path, name, data.astype(dtype))


@st.composite
def attribute_mutation(draw):
    """(description, mutate(path), must_refuse) for one attribute (None: either outcome)."""
    name = draw(st.sampled_from(JSON_ATTRIBUTES + ["/format_version"]))
    kind = draw(st.sampled_from(["text", "value", "field", "delete", "array", "number"]))
    if kind == "text":
        # HDF5 text cannot hold NUL
        text = draw(st.text(st.characters(exclude_characters="\x00"), max_size=12))
        return (name, kind, text), lambda p: set_attribute(p, name, text), None
    if kind == "value":
        value = draw(JSON_VALUES)
        return (name, kind, value), lambda p: set_attribute(p, name, json.dumps(value)), None
    if kind == "field":
        key = draw(st.one_of(st.integers(0, 8), st.sampled_from(
            ["cutoff", "elements", "g2", "g4", "energy", "forces", "layer_sizes", "n_members",
             "dtype", "activations", "seed", "member_offset", "angular_cutoff"])))
        value = draw(st.one_of(JSON_VALUES, st.sampled_from(
            [0, -1, 10 ** 6, 10 ** 9, 10 ** 400, 1e308, float("nan"), "1e6", [10 ** 6, 1]])))
        return (name, kind, key, value), lambda p: set_field(p, name, key, value), None
    if kind == "delete":
        # metadata and labels are optional; a missing format_version reads as -1, as before
        must = None if name == "/format_version" else name not in OPTIONAL_ATTRIBUTES
        return (name, kind), lambda p: delete_attribute(p, name), must
    if kind == "array":
        value = draw(st.sampled_from([np.array([b"{}", b"{}"]), np.zeros(3), np.array([[1]])]))
        return (name, kind, value.dtype.str), lambda p: set_attribute(p, name, value), True
    value = draw(st.one_of(st.integers(-10 ** 9, 10 ** 9), FLOATS))
    must = None if name == "/format_version" else True  # a number is no JSON text
    return (name, kind, value), lambda p: set_attribute(p, name, value), must


def set_field(path, name, key, value):
    """Set item ``key`` of a JSON list/object attribute (or of the format version's ...)."""
    if name == "/format_version":
        return set_attribute(path, name, str(value))
    parsed = json_attribute(path, name)
    if isinstance(parsed, list) and isinstance(key, int):
        if key < len(parsed):
            parsed[key] = value
        else:
            parsed.append(value)
    elif isinstance(parsed, dict):
        parsed[str(key)] = value
    set_attribute(path, name, json.dumps(parsed))


def delete_attribute(path, name):
    with h5py.File(path, "r+") as f:
        parent, leaf = split_name(name)
        del f[parent].attrs[leaf]


@settings(max_examples=60, deadline=None)
@given(mutation=st.one_of(dataset_mutation(), attribute_mutation()))
def test_any_single_mutation_is_refused_cleanly_or_harmless(template, mutation):
    description, mutate, must_refuse = mutation
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(shutil.copy(template, Path(tmp) / "model.h5"))
        mutate(path)
        try:
            potential = load_model(path)
        except DataFormatError as error:
            message = str(error)
            assert "\n" not in message and "\r" not in message, (description, message)
            assert str(path) in message, (description, message)
            assert must_refuse is not False, (description, message)
            return
        assert must_refuse is not True, description
        # whatever loads is usable: finite energies, forces and spreads
        prediction = potential.predict(water_box(2, n_molecules=2))
        for field in ("energy", "forces", "energy_std", "forces_std"):
            assert np.isfinite(getattr(prediction, field)).all(), (description, field)
