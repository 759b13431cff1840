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
    ({"numbers": [1], "positions": [[0, 0, float("inf")]]},
     r"row 0: Atoms\(H\): positions contains"),
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


# -- every structure of a request is checked before any is predicted; errors name the row ------

_CU4 = ('4\nLattice="3.6 0 0 0 3.6 0 0 0 3.6" Properties=species:S:1:pos:R:3 pbc="T T T"\n'
        'Cu 0 0 0\nCu 0 1.8 1.8\nCu 1.8 0 1.8\nCu 1.8 1.8 {z}\n')


@pytest.mark.parametrize("rows, message", [
    ([{"extxyz": _CU4.format(z=0)}, {"extxyz": _CU4.format(z="nan")}],
     r"^row 1, frame 0: Atoms\(Cu4\): positions contains NaN or infinite values "
     r"\(first at \(3, 2\)\)"),
    ([{"extxyz": _CU4.format(z=0) + _CU4.format(z="inf")}], r"^row 0, frame 1: Atoms\(Cu4\): "),
    ([{"numbers": [29], "positions": [[0, 0, 0]]}, {"numbers": [999], "positions": [[0, 0, 0]]}],
     r"^row 1: Atoms\(1 atoms\): invalid atomic number 999"),
    ([{"numbers": [29], "positions": [[0, 0, 0]], "cell": [[3.6, 0, 0], [0, 3.6, 0], [0, 0, 0]]}],
     r"^row 0: Atoms\(Cu\): periodic cell has zero volume"),
    ([{"numbers": [29], "positions": [[0, 0, 0]], "cel": [[3, 0, 0], [0, 3, 0], [0, 0, 3]]}],
     r"^row 0: unknown column 'cel' \(did you mean 'cell'\?\)"),
    ([{"extxyz": _CU4.format(z=0), "numbers": [29], "positions": [[0, 0, 0]]}],
     r"^row 0: give extxyz, or numbers and positions \(cell, pbc\), not both"),
    ([{"numbers": [29, 29], "positions": [[0, 0, 0], [1, 2, 3]], "pbc": [True, False]}],
     r"^row 0: pbc must be one boolean or three"),
])
def test_bad_structures_name_row_and_frame(rows, message):
    with pytest.raises(InputError, match=message):
        structures_from_rows(rows)


class _CountingPotential:
    """A potential that counts its predict calls."""

    def __init__(self, potential):
        self.potential, self.calls = potential, 0
        self.elements = potential.elements

    def predict(self, *args, **kwargs):
        self.calls += 1
        return self.potential.predict(*args, **kwargs)


def test_missing_element_names_the_row_before_any_prediction(potential):
    counting = _CountingPotential(potential)
    good = {"numbers": [29, 29], "positions": [[0, 0, 0], [2.5, 0, 0]]}
    water = {"numbers": [8, 1, 1], "positions": [[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]]}
    with pytest.raises(InputError, match=r"^row 2: Atoms\(H2O\): element H \(Z=1\) is not one "
                                         r"of the model's elements \(Cu\)"):
        predict_records(counting, [good, good, water])
    assert counting.calls == 0


def test_integer_arrays_read_like_floats():
    ints = {"numbers": [29, 29], "positions": [[0, 0, 0], [2, 0, 0]],
            "cell": [[10, 0, 0], [0, 10, 0], [0, 0, 10]]}
    floats = {k: np.asarray(v, float).tolist() for k, v in ints.items()}
    (_, _, a), (_, _, b) = structures_from_rows([ints, floats])
    assert a.positions.dtype == float and np.array_equal(a.positions, b.positions)
    assert np.array_equal(a.cell[:], b.cell[:]) and a.pbc.all()


def test_mixed_rows_and_missing_cells_of_a_frame():
    """dataframe_records with rows of both forms: pandas fills the other form's columns with NaN."""
    import pandas as pd

    frame = pd.DataFrame([{"extxyz": _CU4.format(z=0)},
                          {"numbers": [29], "positions": [[0, 0, 0]]}])
    found = structures_from_rows(frame.to_dict(orient="records"))
    assert [(k, j, len(a)) for k, j, a in found] == [(0, 0, 4), (1, 0, 1)]


def test_too_many_atoms_is_refused_before_prediction(potential):
    from pesnet.tracking.serving import RequestTooLarge

    counting = _CountingPotential(potential)
    rows = [{"extxyz": _CU4.format(z=0) * 2}, {"extxyz": _CU4.format(z=0)}]
    with pytest.raises(RequestTooLarge, match=r"^row 1, frame 0 brings the request to 12 atoms; "
                                              r"at most 10 atoms per request"):
        predict_records(counting, rows, max_atoms=10)
    assert counting.calls == 0
    assert len(predict_records(counting, rows, max_atoms=12)) == 3


# -- over HTTP: one `pesnet serve` on 127.0.0.1 with small limits for all these tests ----------

SERVE_MAX_ATOMS = 100  # three 32-atom frames pass, four do not
SERVE_MAX_MB = 0.05  # 52,428 bytes: a few frames of text


@pytest.fixture(scope="module")
def served(potential, cu_features, tmp_path_factory):
    """`pesnet serve` of :func:`potential`, registered in a temporary store:
    (base URL, model file, cu frames)."""
    import subprocess

    from pesnet.potential.io import save_model
    from pesnet.tracking.session import TrackingSession
    from tests.pipeline_helpers import (
        free_port,
        pesnet_command,
        stop,
        subprocess_env,
        wait_for_http,
    )

    root = tmp_path_factory.mktemp("served")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    model = save_model(potential, root / "model.h5")
    frames = ase.io.read(cu_features / "cu.extxyz", ":4")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        session = TrackingSession.start(uri, "serve-limits", {}, {})
        model_uri, model_id = session.log_pyfunc(model, frames[0])
        session.register("serve-limits", model_uri, model_id, {})
        session.end()
    port = free_port()
    with open(root / "serve.log", "w") as sink:
        server = subprocess.Popen(
            pesnet_command("serve", "serve-limits", "--port", port, "--max-atoms",
                           SERVE_MAX_ATOMS, "--max-request-mb", SERVE_MAX_MB),
            env=subprocess_env(MLFLOW_TRACKING_URI=uri), stdout=sink, stderr=subprocess.STDOUT,
            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/health", server, timeout=90)
        yield url, model, frames
    finally:
        stop(server)


def _post(url: str, body) -> tuple[int, dict]:
    """(HTTP status, decoded JSON answer) of POST /invocations with ``body`` (bytes or JSON)."""
    import json
    import urllib.error
    import urllib.request

    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(f"{url}/invocations", data,
                                     {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _records(*rows) -> dict:
    return {"dataframe_records": list(rows)}


_GOOD = {"numbers": [29, 29], "positions": [[0, 0, 0], [2.5, 0, 0]]}


@pytest.mark.parametrize("body, status, message", [
    (b'{"dataframe_records": [', 400, "valid JSON"),
    (_records(_GOOD, {"numbers": [29], "positions": [[0, 0, 0]], "cel": [[3, 0, 0]] * 3}),
     400, "row 1: unknown column 'cel' (did you mean 'cell'?)"),
    (b'{"dataframe_records": [{"numbers": [29], "positions": [[0, 0, NaN]]}]}',
     400, "row 0: Atoms(Cu): positions contains NaN"),
    (_records({"extxyz": _CU4.format(z=0)}, {"extxyz": _CU4.format(z=0) + _CU4.format(z="nan")}),
     400, "row 1, frame 1: Atoms(Cu4): positions contains NaN"),
    (_records(_GOOD, _GOOD, {"numbers": [999], "positions": [[0, 0, 0]]}),
     400, "row 2: Atoms(1 atoms): invalid atomic number 999"),
    (_records({**_GOOD, "cell": [[3.6, 0, 0], [3.6, 0, 0], [0, 0, 3.6]]}),
     400, "row 0: Atoms(Cu2): periodic cell has zero volume"),
    (_records(_GOOD, {"numbers": [1, 1], "positions": [[0, 0, 0], [0.74, 0, 0]]}),
     400, "row 1: Atoms(H2): element H (Z=1) is not one of the model's elements (Cu)"),
])
def test_http_bad_requests_name_the_row(served, body, status, message):
    url, _, _ = served
    code, answer = _post(url, body)
    assert (code, answer["error_code"]) == (status, "BAD_REQUEST")
    assert message in answer["message"]


def test_http_integer_arrays_answer_like_floats(served):
    url, _, _ = served
    ints = {"numbers": [29, 29], "positions": [[0, 0, 0], [2, 0, 0]],
            "cell": [[10, 0, 0], [0, 10, 0], [0, 0, 10]]}
    floats = {k: np.asarray(v, float).tolist() for k, v in ints.items()}
    code, answer = _post(url, _records(ints, floats))
    assert code == 200, answer
    first, second = answer["predictions"]
    assert first["energy"] == second["energy"] and first["forces"] == second["forces"]
    code, split = _post(url, {"dataframe_split": {"columns": list(ints),
                                                  "data": [list(ints.values())]}})
    assert code == 200 and split["predictions"][0]["energy"] == first["energy"]


def test_http_rows_of_both_forms_in_one_request(served):
    url, model, frames = served
    from pesnet.potential.io import load_model

    code, answer = _post(url, _records({"extxyz": _extxyz(frames[0])}, _GOOD))
    assert code == 200, answer
    assert [p["row"] for p in answer["predictions"]] == [0, 1]
    expected = load_model(model).predict(frames[0])
    assert answer["predictions"][0]["energy"] == pytest.approx(float(expected.energy[0]))


def test_http_too_many_atoms_is_413_naming_the_row(served):
    url, _, frames = served
    code, answer = _post(url, _records({"extxyz": _extxyz(frames[:2])},
                                       {"extxyz": _extxyz(frames[2:4])}))
    assert code == 413, answer
    assert answer["message"].endswith(
        f"row 1, frame 1 brings the request to {sum(map(len, frames))} atoms; at most "
        f"{SERVE_MAX_ATOMS} atoms per request (pesnet serve --max-atoms)")
    assert _post(url, _records({"extxyz": _extxyz(frames[:3])}))[0] == 200


def test_http_oversize_body_is_413_without_reading_it(served):
    """A declared Content-Length over the limit is answered before the body is sent; a body
    sent anyway (plain or chunked) is answered 413 too."""
    import http.client
    import json

    url, _, _ = served
    limit = int(SERVE_MAX_MB * 2**20)
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    connection.putrequest("POST", "/invocations")
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Content-Length", str(100 * limit))
    connection.putheader("Expect", "100-continue")
    connection.endheaders()  # no body follows: the answer must not wait for it
    answer = connection.getresponse()
    assert answer.status == 413
    assert f"at most {limit} bytes" in json.loads(answer.read())["message"]
    connection.close()

    padding = {"extxyz": _CU4.format(z=0) + " " * limit}
    code, answer = _post(url, _records(padding))
    assert code == 413 and "pesnet serve --max-request-mb" in answer["message"]

    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    chunks = (b" " * 8192 for _ in range(limit // 8192 + 2))
    connection.request("POST", "/invocations", body=chunks, encode_chunked=True,
                       headers={"Content-Type": "application/json"})
    assert connection.getresponse().status == 413
    connection.close()
