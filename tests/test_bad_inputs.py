"""Bad inputs of issue 29 that gave tracebacks, silent wrong results, a hang or misleading messages: each
is now one line naming the file or the option (and the limit, where a size or count is bounded), or
read as the user meant it."""

from __future__ import annotations

import io
import os
import pathlib
import pickle
import re
import struct
import zipfile

import numpy as np
import pytest
import safetensors
import safetensors.torch
import torch
from click.testing import CliRunner
from PIL import Image

import hqf.learn.process.pace
import hqf.learn.run_data
from hqf.cli import main
from hqf.errors import ConfigError, DataError
from hqf.learn.config import RunConfig
from hqf.learn.data.files import read_file
from hqf.learn.data.load import load_dataset
from hqf.learn.run_data import load_data
from hqf.learn.rundir.saved import MODEL, load, save_model
from hqf.learn.training.model import build_model

TINY = dict(
    dataset="digits-4x4",
    samples=300,
    epochs=1,
    batch_size=32,
    ansatz="hea2x1",
    latent=4,
    hidden=8,
    vai_samples=32,
    latency_repeats=2,
    regularizers=["stability"],
)
#: `hqf run` options of a tiny run (the errors below come before it would train)
QUICK = ["--samples", "300", "--epochs", "1", "--ansatz", "hea2x1", "--regularizer", "none", "--quiet"]


def one_line(result, *fragments: str) -> str:
    """The one ``Error:`` line of a CLI result that exited 2, checked to hold every fragment."""
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("Error: "), (result.exit_code, lines)
    assert "Traceback" not in result.output, result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def invoke(*args) -> object:
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def no_data(monkeypatch):
    """Fail the test if a run loads its data (the error must come before)."""
    monkeypatch.setattr(hqf.learn.run_data, "load_dataset", lambda *a, **k: pytest.fail("the data was loaded"))


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory) -> pathlib.Path:
    """A run folder as a finished run leaves it for predict and evaluate: config.toml and an (untrained) model."""
    folder = tmp_path_factory.mktemp("saved") / "run"
    folder.mkdir()
    config = RunConfig(**TINY)
    data = load_data(config)
    (folder / "config.toml").write_text(config.to_toml())
    save_model(folder / MODEL, build_model(config, data.n_features, data.n_classes), data)
    return folder


def _rows(labels) -> list[str]:
    return [f"{0.1 * i:.2f},{(7 * i) % 5:.1f},{label}" for i, label in enumerate(labels)]


# -- CSV and image folders: silent wrong results ------------------------------------------------------


@pytest.mark.parametrize("bom", ["", "\ufeff"], ids=["plain", "bom"])
def test_a_headerless_csv_keeps_its_first_row(tmp_path, bom):
    path = tmp_path / "data.csv"
    path.write_text(bom + "\n".join(_rows(["cat", "dog"] * 6)) + "\n", encoding="utf-8")
    x, y, names, _ = read_file(path)
    assert len(y) == 12 and names == ("cat", "dog")
    np.testing.assert_allclose(x[0], [0.0, 0.0])
    with_header = tmp_path / "header.csv"
    with_header.write_text(bom + "a,b,label\n" + "\n".join(_rows(["cat", "dog"] * 6)) + "\n", encoding="utf-8")
    assert len(read_file(with_header)[1]) == 12  # a header is still a header


def test_a_bom_before_a_numeric_first_row_is_not_a_header(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("\ufeff" + "\n".join(_rows([0, 1] * 6)) + "\n", encoding="utf-8")
    assert len(read_file(path)[1]) == 12


@pytest.mark.parametrize("missing", ["nan", "NaN", ""])
def test_a_missing_label_is_refused_not_made_a_class(tmp_path, missing):
    path = tmp_path / "data.csv"
    path.write_text("a,b,label\n" + "\n".join(_rows(["cat", "dog"] * 6 + [missing])) + "\n")
    with pytest.raises(DataError, match=rf"line 14, column 'label': the label is missing \('{missing}'\)"):
        read_file(path)


def test_npz_text_labels_are_read_as_in_a_csv_file(tmp_path):
    path = tmp_path / "data.npz"
    np.savez(path, X=np.zeros((12, 2)), y=np.array(["a", "b"] * 5 + ["nan", "a"]))
    with pytest.raises(DataError, match=r"'y' row 10: the label is missing \('nan'\)"):
        read_file(path)
    np.savez(path, X=np.zeros((12, 2)), y=np.array(["1", "1.0", "2", "2.0"] * 3))
    assert read_file(path)[2] == ("1", "2")


def test_equal_numeric_labels_are_one_class(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("a,b,label\n" + "\n".join(_rows(["1", "1.0", "2", "2.0"] * 3)) + "\n")
    x, y, names, _ = read_file(path)
    assert names == ("1", "2") and y.tolist() == [0, 0, 1, 1] * 3
    path.write_text("a,b,label\n" + "\n".join(_rows(["1", "1.0"] * 6)) + "\n")
    with pytest.raises(DataError, match="1 distinct value"):
        read_file(path)


def test_an_image_folder_of_one_class_is_refused(tmp_path):
    folder = tmp_path / "images" / "only"
    folder.mkdir(parents=True)
    for i in range(6):
        Image.fromarray(np.full((4, 4), 40 * i, dtype=np.uint8)).save(folder / f"{i}.png")
    result = invoke("run", "--dataset", f"images:{tmp_path / 'images'}", "--out", tmp_path / "r", *QUICK)
    one_line(result, "1 class folder; need at least 2 classes")
    assert not (tmp_path / "r").exists()


# -- tracebacks -------------------------------------------------------------------------------------


def test_seeds_beyond_64_bits_are_one_line(tmp_path, saved_run, no_data):
    seed = 2**70
    one_line(invoke("run", "--seed", seed, "--out", tmp_path / "r", *QUICK), "'seed' must be at most", "2**63 - 1")
    config = tmp_path / "c.toml"
    config.write_text(f"seed = {seed}\n")
    one_line(invoke("run", "--config", config, "--out", tmp_path / "r"), f"{config}: 'seed' must be at most")
    one_line(invoke("run", "--set", f"data_seed={seed}", "--out", tmp_path / "r"), "'data_seed' must be at most")
    one_line(invoke("evaluate", saved_run, "--seed", seed, "--input-noise", "0.1"), "--seed must be an integer from 0")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "setting, fragment",
    [
        ("hidden=99999999999999999", "backbone_options.mlp: 'hidden' must be at most 1,000,000"),
        ("latent=99999999999999999", "'latent' must be at most 1,000,000"),
        ("head=[4, 99999999999999999]", "'head' widths must be at most 1,000,000"),
        ("samples=1000000000000", "'samples' must be at most 100,000,000"),
        ("latency_repeats=100000000", "'latency_repeats' must be at most 10,000"),
    ],
)
def test_sizes_and_repeat_counts_are_bounded_before_anything_is_built(tmp_path, no_data, setting, fragment):
    one_line(invoke("run", "--set", setting, "--out", tmp_path / "r"), fragment)
    assert not (tmp_path / "r").exists()


def test_samples_on_the_command_line_are_bounded(tmp_path, no_data):
    one_line(invoke("run", "--samples", 10**12, "--out", tmp_path / "r"), "'samples' must be at most 100,000,000")


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_a_config_from_dev_zero_is_one_line(tmp_path):
    one_line(invoke("run", "--config", "/dev/zero", "--out", tmp_path / "r"), "/dev/zero: not a configuration file")


@pytest.mark.parametrize(
    "text",
    ["a = " + "[" * 5000 + "]" * 5000, "a = " + "{b = " * 3000 + "1" + "}" * 3000, "a = " + "[" * 40 + "]" * 40],
    ids=["lists-5000", "tables-3000", "lists-40"],
)
def test_a_config_nested_too_deep_is_one_line(tmp_path, text):
    path = tmp_path / "deep.toml"
    path.write_text(text + "\n")
    one_line(invoke("run", "--config", path, "--out", tmp_path / "r"), "nested deeper than 32 levels")
    with pytest.raises(ConfigError, match="nested deeper than 32 levels"):
        RunConfig.from_toml(path)


@pytest.mark.parametrize("member", [b"hello, raw bytes", pickle.dumps(np.zeros((30, 2)))], ids=["raw", "pickle"])
def test_an_npz_member_that_is_not_an_array_is_one_line(tmp_path, member):
    path = tmp_path / "data.npz"
    labels = io.BytesIO()
    np.save(labels, np.arange(30) % 2)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("X.npy", member)
        archive.writestr("y.npy", labels.getvalue())
    with pytest.raises(DataError, match="member 'X' is not a NumPy array"):
        load_dataset(str(path))


@pytest.mark.parametrize(
    "shape, fragment",
    [
        ((10**12, 2), "(16,000,000,000,000 bytes); hqf's limit is 17,179,869,184 bytes per array"),
        ((1000, 2), "(16,000 bytes) but holds 64; the file is truncated or corrupt"),
    ],
)
def test_an_npz_header_is_checked_before_its_array_is_allocated(tmp_path, shape, fragment):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": shape})
    labels = io.BytesIO()
    np.save(labels, np.arange(30) % 2)
    path = tmp_path / "data.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("X.npy", header.getvalue() + bytes(64))
        archive.writestr("y.npy", labels.getvalue())
    with pytest.raises(DataError, match=re.escape(f"member 'X' declares shape {list(shape)} of float64")) as info:
        load_dataset(str(path))
    assert fragment in str(info.value)


def _mnist(folder: pathlib.Path, train_shape: tuple[int, ...], data: int) -> None:
    def idx(shape, size):
        return bytes([0, 0, 8, len(shape)]) + struct.pack(f">{len(shape)}i", *shape) + bytes(size)

    (folder / "train-images-idx3-ubyte").write_bytes(idx(train_shape, data))
    (folder / "train-labels-idx1-ubyte").write_bytes(idx((4,), 4))
    (folder / "t10k-images-idx3-ubyte").write_bytes(idx((4, 2, 2), 16))
    (folder / "t10k-labels-idx1-ubyte").write_bytes(idx((4,), 4))


@pytest.mark.parametrize(
    "shape, data, fragment",
    [
        ((-1, 2, 2), 16, "shape [-1, 2, 2]; every size must be >= 1"),
        ((-2, -2, 4), 16, "shape [-2, -2, 4]; every size must be >= 1"),
        ((0, 28, 28), 0, "shape [0, 28, 28]; every size must be >= 1"),
        ((2**31 - 1, 2**31 - 1, 4), 16, "hqf's limit is 4,294,967,296 bytes per file"),
    ],
)
def test_idx_headers_with_bad_sizes_are_one_line(tmp_path, shape, data, fragment):
    _mnist(tmp_path, shape, data)
    with pytest.raises(DataError, match="train-images-idx3-ubyte: ") as info:
        load_dataset(f"mnist:{tmp_path}")
    assert fragment in str(info.value)


def test_a_png_decompression_bomb_is_one_line(tmp_path):
    for name, size in [("a", (20_000, 20_000)), ("b", (4, 4))]:
        (tmp_path / name).mkdir()
        Image.new("1", size).save(tmp_path / name / "0.png")  # 400 M pixels in a few kB
    with pytest.raises(DataError, match=r"0\.png: more pixels than hqf's limit of 16,777,216 per image"):
        load_dataset(f"images:{tmp_path}")
    Image.new("1", (5000, 5000)).save(tmp_path / "a" / "0.png")  # under Pillow's own limit, over hqf's
    with pytest.raises(DataError, match="5000×5000 pixels; hqf's limit is 16,777,216 pixels per image"):
        load_dataset(f"images:{tmp_path}")


def test_predict_on_a_device_that_is_not_one_is_one_line(saved_run):
    one_line(invoke("predict", saved_run, "--device", "???"), "'device' must be a torch device", "'???'")


def _tampered(saved_run: pathlib.Path, folder: pathlib.Path, metadata=None, drop=None, change=None) -> pathlib.Path:
    """A copy of ``saved_run`` whose model file has ``metadata`` changed (None: removed), the tensor
    ``drop`` removed, or the tensor ``change[0]`` replaced by ``change[1](tensor)``."""
    folder.mkdir()
    (folder / "config.toml").write_text((saved_run / "config.toml").read_text())
    with safetensors.safe_open(str(saved_run / MODEL), framework="pt") as handle:
        meta, tensors = handle.metadata(), {key: handle.get_tensor(key) for key in handle.keys()}
    for key, value in (metadata or {}).items():
        meta.pop(key) if value is None else meta.__setitem__(key, value)
    if drop is not None:
        del tensors[drop]
    if change is not None:
        tensors[change[0]] = change[1](tensors[change[0]])
    (folder / MODEL).write_bytes(safetensors.torch.save(tensors, metadata=meta))
    return folder


@pytest.mark.parametrize(
    "tamper, fragment",
    [
        (dict(metadata={"n_features": "sixteen"}), "metadata 'n_features' is 'sixteen', not a whole number"),
        (dict(metadata={"n_features": None}), "metadata 'n_features' is missing"),
        (dict(metadata={"n_features": "99999999999"}), "metadata 'n_features' is 99,999,999,999; it must lie in"),
        (dict(metadata={"class_names": '["a", '}), "metadata 'class_names' is not JSON"),
        (dict(metadata={"class_names": '["a"]'}), "metadata 'class_names' lists 1 names for n_classes 10"),
        (dict(metadata={"class_names": "7"}), "metadata 'class_names' is int, not a list of names"),
        (dict(drop="scaler.std"), "the scaler has 'scaler.mean' alone"),
        (dict(change=("scaler.std", lambda t: t * 0)), "tensor 'scaler.std' holds 0; a standard deviation must be > 0"),
        (dict(change=("model.", lambda t: t * float("nan"))), "holds NaN or infinity"),
    ],
    ids=["n_features-text", "n_features-missing", "n_features-huge", "names-json", "names-short", "names-number",
         "std-dropped", "std-zero", "nan-weights"],
)  # fmt: skip
def test_a_tampered_model_file_is_one_line_naming_it(saved_run, tmp_path, tamper, fragment):
    change = tamper.get("change")
    if change is not None and change[0] == "model.":  # the model's first tensor
        tamper = {**tamper, "change": (next(k for k in _keys(saved_run) if k.startswith("model.")), change[1])}
    folder = _tampered(saved_run, tmp_path / "run", **tamper)
    line = one_line(invoke("predict", folder), f"{folder / MODEL}: ", fragment, "the file is damaged")
    assert "angles contain" not in line
    with pytest.raises(ConfigError, match="the file is damaged"):
        load(folder)


def _keys(folder: pathlib.Path) -> list[str]:
    with safetensors.safe_open(str(folder / MODEL), framework="pt") as handle:
        return list(handle.keys())


# -- messages that misled ---------------------------------------------------------------------------


def test_a_csv_value_beyond_float32_names_the_file_and_the_cell(tmp_path, saved_run):
    path = tmp_path / "big.csv"
    path.write_text("a,b,label\n" + "\n".join(_rows(["cat", "dog"] * 6)) + "\n1e300,2,cat\n")
    result = invoke("run", "--dataset", path, "--out", tmp_path / "r", *QUICK)
    one_line(result, f"{path}: features contain a value beyond float32's range", "1e+300 at line 14, feature 'a'")
    features = tmp_path / "features.csv"
    features.write_text("\n".join(",".join(["1e300"] + ["0"] * 15) for _ in range(3)) + "\n")
    one_line(invoke("predict", saved_run, "--dataset", features), f"{features}: features contain a value beyond")


def test_input_noise_that_overflows_names_the_option(tmp_path, saved_run):
    result = invoke("run", "--set", "input_noise=1e300", "--dataset", "digits-4x4", "--out", tmp_path / "r", *QUICK)
    one_line(result, "'input_noise' = 1e+300 makes the (z-scored) inputs overflow float32")
    one_line(invoke("evaluate", saved_run, "--input-noise", "1e300"), "--input-noise 1e+300 makes the (z-scored)")


def test_the_slow_run_estimate_takes_the_rows_an_iteration_really_has(monkeypatch):
    config = RunConfig(**{**TINY, "batch_size": 10**9})
    data = load_data(config)
    model = build_model(config, data.n_features, data.n_classes)
    monkeypatch.setattr(hqf.learn.process.pace, "SLOW_RUN_S", -1.0)  # always warn, to read the estimate
    x = torch.as_tensor(data.train.x)
    text = hqf.learn.process.pace.slow_run_warning(config, model, x, iterations=1)
    assert text is not None and "1000000000" not in text, text
    assert f"of the batch's {len(x)} rows" in text or f"timed at the batch size, {len(x)} rows" in text, text


@pytest.mark.parametrize(
    "value",
    ["[" * 5000 + "]" * 5000, "{b = " * 3000 + "1" + "}" * 3000, "[" * 40 + "]" * 40],
    ids=["lists-5000", "tables-3000", "lists-40"],
)
def test_a_set_value_nested_too_deep_is_one_line(tmp_path, value):
    line = one_line(invoke("run", "--set", f"head={value}", "--out", tmp_path / "r"), "nested deeper than 32 levels")
    assert line == "Error: --set head: tables or lists nested deeper than 32 levels (hqf's limit)"
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "curves, problem",
    [
        ("step,loss,grad_norm\n1,0.5,0.1\n2,abc,0.1\n", "line 3, column 'loss': 'abc' is not a number"),
        ("step,loss,grad_norm\nfirst,0.5,0.1\n", "line 2, column 'step': 'first' is not a number"),
        ("loss,grad_norm\n0.5,0.1\n", "line 2, column 'step': nothing is not a number"),
    ],
    ids=["value", "step", "no-step-column"],
)
def test_a_corrupt_curves_file_is_one_line_and_no_report(tmp_path, curves, problem):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text('{"accuracy": 0.5}')
    (run / "config.toml").write_text("seed = 0\n")
    (run / "curves.csv").write_text(curves)
    line = one_line(invoke("report", run, "--out", tmp_path / "out"))
    assert line == f"Error: {run}/curves.csv: {problem}; fix or leave out that run"
    assert not (tmp_path / "out").exists()
