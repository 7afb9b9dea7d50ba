"""Fuzzing the parsers a user's files reach: arbitrary bytes and TOML documents to the run-config and
sweep-grid parsers, arbitrary small CSV and NPZ files to the data loader, arbitrary IDX headers to the
image reader, arbitrary metadata and scaler tensors in a run's ``model.safetensors``. Every input is
accepted or rejected with hqf's own error (:class:`hqf.errors.HqfError`), never another exception."""

from __future__ import annotations

import contextlib
import datetime
import gzip
import io
import json
import pathlib
import struct
import tempfile
from collections.abc import Iterator

import numpy as np
import pytest
import safetensors.torch
import tomli_w
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hqf.errors import HqfError
from hqf.learn.config import RunConfig
from hqf.learn.data.images import read_idx
from hqf.learn.data.load import load_dataset
from hqf.learn.run_data import load_data
from hqf.learn.rundir.saved import FORMAT, MODEL, load, save_model
from hqf.learn.training.model import build_model
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


SIZES = st.one_of(st.integers(-3, 6), st.integers(-(2**31), 2**31 - 1))


@FUZZ
@given(
    st.binary(min_size=3, max_size=3).map(lambda b: b"\x00\x00\x08" if b[0] % 2 else b),
    st.lists(SIZES, max_size=5),
    st.one_of(st.none(), st.integers(0, 80)),
    st.booleans(),
)
def test_arbitrary_idx_headers_to_the_image_reader(magic, sizes, data, compress):
    """``data``: the bytes after the header (None: as many as the sizes multiply to, ignoring signs)."""
    promised = abs(int(np.prod(sizes, dtype=object))) if sizes else 0
    length = data if data is not None else (promised if promised <= 4096 else 7)
    payload = magic + bytes([len(sizes)]) + struct.pack(f">{len(sizes)}i", *sizes) + bytes(length)
    with _file(".gz" if compress else "", gzip.compress(payload) if compress else payload) as path:
        try:
            array = read_idx(path)
        except HqfError:
            return
        assert list(array.shape) == sizes and min(sizes) >= 1


TINY = dict(dataset="digits-4x4", samples=120, ansatz="hea2x1", latent=4, hidden=8, regularizers=["stability"])


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> tuple[str, dict, dict]:
    """A run's config.toml text, and the tensors and metadata of its ``model.safetensors`` (untrained)."""
    folder = tmp_path_factory.mktemp("model")
    config = RunConfig(**TINY)
    data = load_data(config)
    save_model(folder / MODEL, build_model(config, data.n_features, data.n_classes), data)
    with safetensors.safe_open(str(folder / MODEL), framework="pt") as handle:
        return config.to_toml(), {k: handle.get_tensor(k) for k in handle.keys()}, handle.metadata()


FIELD_TEXT = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.text(max_size=8),
    st.lists(st.one_of(st.text(max_size=3), st.integers(), st.none()), max_size=12).map(json.dumps),
    st.sampled_from(["16", "10", "0", "1", "", " 16", "1e3", "١٦", "[]", "{}", "null"]),
)
METADATA = st.dictionaries(
    st.sampled_from(["format", "n_features", "n_classes", "class_names", "other"]),
    st.one_of(FIELD_TEXT, st.just(FORMAT)),
    max_size=5,
)
SCALER = st.sampled_from(["keep", "drop-mean", "drop-std", "zero-std", "nan-mean", "short", "negative-std"])


@FUZZ
@given(METADATA, st.lists(st.sampled_from(["format", "n_features", "n_classes", "class_names"])), SCALER)
def test_arbitrary_model_metadata_to_the_loader(model_file, changes, removed, scaler):
    config, tensors, metadata = model_file
    metadata = {k: v for k, v in {**metadata, **changes}.items() if k not in removed}
    tensors = dict(tensors)
    if scaler.startswith("drop-"):
        del tensors[f"scaler.{scaler.removeprefix('drop-')}"]
    elif scaler != "keep":
        key = "scaler.mean" if scaler == "nan-mean" else "scaler.std"
        change = {"zero-std": lambda t: t * 0, "nan-mean": lambda t: t * float("nan"), "short": lambda t: t[:-1]}
        tensors[key] = change.get(scaler, lambda t: -t)(tensors[key]).contiguous()
    with tempfile.TemporaryDirectory(prefix="hqf-fuzz-") as folder:
        run = pathlib.Path(folder)
        (run / "config.toml").write_text(config)
        (run / MODEL).write_bytes(safetensors.torch.save(tensors, metadata=metadata))
        try:
            trained = load(run)
        except HqfError:
            return
        probabilities = trained.predict_proba(np.zeros((2, trained.n_features)))
        assert (
            probabilities.shape == (2, len(trained.class_names))
            and torch.isfinite(torch.as_tensor(probabilities)).all()
        )
