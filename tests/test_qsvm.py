"""The ``qsvm`` baseline (plugins/baselines/qsvm.py): fit, reuse of the training kernel, counts, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hqf.errors import ConfigError
from hqf.learn.config import RunConfig
from hqf.learn.experiment import run
from hqf.learn.run_data import load_data
from hqf.learn.training.model import build_model
from hqf.quantum.kernels import target_alignment


def blobs_csv(tmp_path, n: int = 80, seed: int = 0, gap: float = 1.5):
    """Two Gaussian blobs in two features, centred at ±gap, labels 0/1: linearly separable."""
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], n // 2)
    x = rng.normal(0.0, 0.4, size=(n, 2)) + np.where(y[:, None] == 1, gap, -gap)
    path = tmp_path / "blobs.csv"
    lines = ["f0,f1,label"] + [f"{a:.6f},{b:.6f},{c}" for (a, b), c in zip(x, y)]
    path.write_text("\n".join(lines) + "\n")
    return path


def toy_config(path, **changes) -> RunConfig:
    base = dict(
        dataset=str(path),
        samples="all",
        baseline="qsvm",
        encoder="angle",
        regularizers=[],
        epochs=1,
        batch_size=16,
        vai_samples=8,
        vai_draws=2,
        latency_repeats=1,
        seed=3,
    )
    return RunConfig.from_dict({**base, **changes})


def fitted(config: RunConfig):
    data = load_data(config)
    model = build_model(config, data.n_features, data.n_classes, train=data.train)
    return data, model, model.module


def test_a_rebuilt_model_loads_the_training_split_itself_and_fits_the_same(tmp_path):
    config = toy_config(blobs_csv(tmp_path), baseline_options={"max_train": 20})
    data, _, svm = fitted(config)
    again = build_model(config, data.n_features, data.n_classes).module  # as from a run directory: no split given
    assert np.array_equal(again.fit_x, svm.fit_x) and np.array_equal(again.gram, svm.gram)


def test_qsvm_beats_chance_on_separable_blobs(tmp_path):
    config = toy_config(blobs_csv(tmp_path))
    data, model, svm = fitted(config)
    with torch.no_grad():
        predicted = model(torch.as_tensor(data.test.x)).argmax(dim=1).numpy()
    assert (predicted == data.test.y).mean() >= 0.9  # chance: 0.5
    assert svm.diagnostics()["kernel_target_alignment"] > 0.2


def test_prediction_computes_only_new_rows_against_support_vectors(tmp_path):
    config = toy_config(blobs_csv(tmp_path), baseline_options={"max_train": 30})
    data, model, svm = fitted(config)
    n_fit = svm.n_fit
    assert n_fit == 30
    assert svm.diagnostics()["kernel_circuits_gram"] == n_fit * (n_fit - 1) // 2
    assert svm.prediction_circuits == 0
    fit_rows = torch.as_tensor(svm.fit_x)
    with torch.no_grad():
        model(fit_rows)  # the fitted points: read from the Gram matrix
    assert svm.prediction_circuits == 0
    test_x = torch.as_tensor(data.test.x)
    with torch.no_grad():
        model(test_x)
    n_sv = svm.diagnostics()["support_vectors"]
    assert n_sv < n_fit and svm.prediction_circuits == len(test_x) * n_sv
    with torch.no_grad():
        model(test_x)  # test rows are computed again at every call
    assert svm.prediction_circuits == 2 * len(test_x) * n_sv
    others = [row for row in data.train.x if not (svm.fit_x == row).all(axis=1).any()]
    with torch.no_grad():
        model(torch.as_tensor(np.stack(others)))
        model(torch.as_tensor(np.stack(others)))  # training rows are kept after the first time
    assert svm.prediction_circuits == (2 * len(test_x) + len(others)) * n_sv


def test_kernel_rows_match_the_gram_matrix_of_the_fit(tmp_path):
    config = toy_config(blobs_csv(tmp_path), baseline_options={"max_train": 20})
    _, _, svm = fitted(config)
    fresh = svm.kernel.cross(svm.fit_angles, svm.fit_angles).numpy()
    assert np.allclose(svm.kernel_rows(torch.as_tensor(svm.fit_x)), fresh, atol=1e-10)
    assert svm.alignment == pytest.approx(
        target_alignment(torch.as_tensor(fresh), torch.as_tensor(svm.fit_y)), abs=1e-10
    )


def test_projected_kernel_and_basis_encoding(tmp_path):
    path = blobs_csv(tmp_path)
    data, model, svm = fitted(toy_config(path, baseline_options={"kernel": "projected", "gamma": 2.0}))
    with torch.no_grad():
        accuracy = (model(torch.as_tensor(data.test.x)).argmax(dim=1).numpy() == data.test.y).mean()
    assert accuracy >= 0.9
    assert svm.diagnostics()["kernel_circuits_gram"] == svm.n_fit  # one circuit per point
    _, _, basis = fitted(toy_config(path, encoder="basis", baseline_options={"binarize": True}))
    bits = basis.reduction(torch.as_tensor(basis.fit_x))
    same = (bits[:, None, :] == bits[None, :, :]).all(dim=-1).to(torch.float64)
    assert torch.allclose(torch.as_tensor(basis.gram), same, atol=1e-10)  # basis states: k = δ(b, b')


def test_run_end_to_end_reports_the_counts(tmp_path):
    config = toy_config(blobs_csv(tmp_path), baseline_options={"max_train": 24})
    metrics = run(config, tmp_path / "run")
    assert metrics["accuracy"] >= 0.9
    model_text = json.loads((tmp_path / "run" / "meta.json").read_text())["model"]
    assert "kernel_circuits_gram=276" in model_text and "kernel_circuits_prediction=" in model_text


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"kernal": "fidelity"}, "baseline_options.qsvm: unknown option 'kernal'"),
        ({"kernel": "rbf"}, "'kernel' must be one of"),
        ({"qubits": 3}, "exceeds the 2 features"),
        ({"C": 0}, "'C' must be a number > 0"),
        ({"max_train": 1}, "'max_train' must be an integer >= 2"),
        ({"binarize": "yes"}, "'binarize' must be true or false"),
    ],
)
def test_bad_options_are_config_errors(tmp_path, options, message):
    with pytest.raises(ConfigError, match=message):
        fitted(toy_config(blobs_csv(tmp_path), baseline_options=options))


def test_an_interleaved_encoder_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="interleaved"):
        fitted(toy_config(blobs_csv(tmp_path), encoder="reupload", encoder_options={"layers": 2}))
