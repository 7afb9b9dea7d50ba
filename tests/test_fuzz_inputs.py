"""Fuzzing the parsers a user's files reach: arbitrary bytes and TOML documents to the run-config and
sweep-grid parsers, arbitrary small CSV and NPZ files to the data loader. Every input is accepted or
rejected with hqf's own error (:class:`hqf.errors.HqfError`), never another exception."""

from __future__ import annotations

import contextlib
import datetime
import io
import pathlib
import tempfile
from collections.abc import Iterator

import numpy as np
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hqf.errors import HqfError
from hqf.learn.config import RunConfig
from hqf.learn.data.load import load_dataset
from hqf.studies.grid import expand, read_grid, validate

#: the keys a fuzzed document draws from: real ones (so values reach the validators) and a few others
KEYS = st.sampled_from([*RunConfig.keys(), "regularizer", "batch-size", "epochz", "", "resolved", "a.b"])
SCALARS = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=12),
    st.sampled_from(["all", "none", "torch", "hea2x1", "adam", "dataset-a", "auto", "stability", "full"]),
    st.datetimes(min_value=datetime.datetime(1, 1, 1), max_value=datetime.datetime(9999, 1, 1)),
    st.dates(),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.one_of(KEYS, st.text(max_size=5)), inner, max_size=3)
    ),
    max_leaves=8,
)
DOCUMENTS = st.dictionaries(st.one_of(KEYS, st.text(max_size=8)), VALUES, max_size=6)
SECTIONS = st.sampled_from(["sweep", "base", "variants", "axes", "report", "extra"])
GRIDS = st.dictionaries(
    SECTIONS,
    st.one_of(
        VALUES,
        st.fixed_dictionaries({}, optional={"seeds": VALUES, "jobs": VALUES}),
        st.dictionaries(
            st.text(max_size=6), st.one_of(VALUES, st.sampled_from(["full", "backbone-only", "nope"])), max_size=3
        ),
    ),
    max_size=5,
)
FUZZ = settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@contextlib.contextmanager
def _file(suffix: str, data: bytes) -> Iterator[pathlib.Path]:
    """``data`` in a file of a fresh folder, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="hqf-fuzz-") as folder:
        path = pathlib.Path(folder) / f"input{suffix}"
        path.write_bytes(data)
        yield path


def _accepted_or_hqf_error(action) -> None:
    try:
        action()
    except HqfError:
        pass


def _config(path: pathlib.Path) -> None:
    RunConfig.from_toml(path)


def _grid(path: pathlib.Path) -> None:
    runs = expand(read_grid(path), path.parent / "out")
    validate(runs)


def _toml(document: dict) -> bytes:
    return tomli_w.dumps(document).encode()


@FUZZ
@given(st.binary(max_size=300))
def test_arbitrary_bytes_as_config_or_grid(data):
    with _file(".toml", data) as path:
        _accepted_or_hqf_error(lambda: _config(path))
        _accepted_or_hqf_error(lambda: _grid(path))


@FUZZ
@given(DOCUMENTS)
def test_arbitrary_toml_documents_as_config(document):
    with _file(".toml", _toml(document)) as path:
        _accepted_or_hqf_error(lambda: _config(path))


@FUZZ
@given(GRIDS)
def test_arbitrary_toml_documents_as_grid(grid):
    with _file(".toml", _toml(grid)) as path:
        _accepted_or_hqf_error(lambda: _grid(path))
        for run in _runs_or_none(path):
            assert (path.parent / "out") in run.directory.parents  # never outside --out


def _runs_or_none(path: pathlib.Path) -> list:
    try:
        return expand(read_grid(path), path.parent / "out")
    except HqfError:
        return []


CELLS = st.one_of(
    st.integers(-5, 5).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", " ", "a", "b", "1e400", "nan", "-", '"x,y"', "é", "0x10", "1_0"]),
)


@FUZZ
@given(st.lists(st.lists(CELLS, min_size=1, max_size=4), min_size=0, max_size=12), st.booleans())
def test_arbitrary_small_csv_files_to_the_loader(rows, header):
    text = "\n".join(
        ",".join(row) for row in ([["f1", "f2", "f3", "label"][: len(rows[0])]] if header and rows else []) + rows
    )
    with _file(".csv", text.encode()) as path:
        _accepted_or_hqf_error(lambda: load_dataset(str(path), samples=None))


@FUZZ
@given(st.binary(max_size=200))
def test_arbitrary_bytes_as_csv_or_npz(data):
    for suffix in (".csv", ".npz"):
        with _file(suffix, data) as path:
            _accepted_or_hqf_error(lambda: load_dataset(str(path), samples=None))


DTYPES = st.sampled_from(
    ["float64", "float32", "int64", "int8", "bool", "complex64", "U3", "S2", "object", "datetime64[s]", "V4"]
)
ARRAYS = st.tuples(DTYPES, st.lists(st.integers(0, 4), min_size=0, max_size=3))


def _array(spec: tuple[str, list[int]], rng: np.random.Generator) -> np.ndarray:
    dtype, shape = spec
    values = rng.integers(0, 3, size=shape)
    if dtype == "object":
        return values.astype(object)
    if dtype == "V4":
        return np.zeros(shape, dtype="V4")
    if dtype == "datetime64[s]":
        return values.astype("datetime64[s]")
    return values.astype(dtype)


@FUZZ
@given(st.dictionaries(st.sampled_from(["X", "x", "y", "label", "z"]), ARRAYS, max_size=3), st.integers(0, 2**32 - 1))
def test_arbitrary_small_npz_files_to_the_loader(arrays, seed):
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    np.savez(buffer, **{key: _array(spec, rng) for key, spec in arrays.items()})  # object arrays: pickled here
    with _file(".npz", buffer.getvalue()) as path:
        _accepted_or_hqf_error(lambda: load_dataset(str(path), samples=None))
