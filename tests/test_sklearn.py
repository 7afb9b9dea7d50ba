"""hqf.sklearn: the scikit-learn estimators (HybridClassifier, QuantumKernelSVC) and their contracts."""

import pickle

import numpy as np
import pytest
import sklearn
import torch
from sklearn.base import clone
from sklearn.datasets import make_blobs
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_estimator

from hqf.errors import ConfigError, DataError
from hqf.learn.training.run_backend import evaluation_backend, training_backend
from hqf.registry.specs import parse_ansatz_spec
from hqf.sklearn import HybridClassifier, QuantumKernelSVC

#: tiny settings: two qubits, one layer, no regularizers, one thread (fast under a loaded machine)
TINY = dict(n_qubits=2, n_layers=1, latent=8, regularizers=(), lr=0.05, batch_size=64, epochs=10, threads=1)

#: the checks that scikit-learn reports as failing and that are expected to (none: every check passes;
#: a check skipped for the environment, e.g. check_array_api_input without SCIPY_ARRAY_API=1 or the
#: pandas checks without pandas, is reported as skipped, not listed here)
EXPECTED_FAILED_CHECKS: dict[str, str] = {}


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    """``threads=1`` sets torch's thread count for the process; put it back after each test."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def blobs(n=120, classes=3, seed=0):
    X, y = make_blobs(n_samples=n, centers=classes, n_features=2, cluster_std=0.6, random_state=seed)
    return X, np.array(["a", "b", "c", "d"])[y]  # string labels: classes_ must map back to them


def test_hybrid_classifier_fits_predicts_and_round_trips_through_pickle_and_clone():
    X, y = blobs()
    clf = HybridClassifier(**TINY).fit(X, y)
    assert list(clf.classes_) == ["a", "b", "c"] and clf.n_features_in_ == 2
    proba = clf.predict_proba(X)
    assert proba.shape == (120, 3) and np.allclose(proba.sum(axis=1), 1)
    assert np.array_equal(clf.predict(X), clf.classes_[proba.argmax(axis=1)])
    assert np.allclose(clf.predict_proba(X[7:9]), proba[7:9], rtol=1e-13, atol=0)  # rows do not affect each other
    assert clf.score(X, y) > 0.9
    assert clf.config_.ansatz == "hea2x1" and clf.config_.seed == 0 and clf.n_iter_ == 20
    again = pickle.loads(pickle.dumps(clf))
    assert np.array_equal(again.predict_proba(X), proba)
    fresh = clone(clf)
    assert fresh.get_params() == clf.get_params() and not hasattr(fresh, "model_")
    assert np.array_equal(fresh.fit(X, y).predict_proba(X), proba)  # the same seed: the same model


def test_hybrid_classifier_parameters_reach_the_run_configuration():
    clf = HybridClassifier(**TINY).set_params(
        ansatz="sel", n_layers=3, fusion="concat", random_state=7, config={"curvature_every": 5, "head": [4]}
    )
    config = clf.run_config()
    assert (config.ansatz, config.fusion, config.seed, config.head, config.threads) == ("sel2x3", "concat", 7, (4,), 1)
    assert config.value("curvature_every") == 5


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"config": {"samples": 10}}, "config key 'samples' is a setting of hqf run that an estimator does not read"),
        ({"config": {"lr": 0.1}}, "config key 'lr' is the estimator's parameter 'lr'; set that instead"),
        ({"config": {"seed": 1}}, "config key 'seed' is the estimator's parameter 'random_state'"),
        ({"config": {"no_such_key": 1}}, "unknown key 'no_such_key'"),
        ({"fusion": "nope"}, "nope"),
        ({"validation_fraction": 1.0}, "'validation_fraction' must be in [0, 1) (got 1.0)"),
    ],
)
def test_hybrid_classifier_rejects_a_bad_setting_in_one_line(params, message):
    X, y = blobs(30)
    with pytest.raises((ConfigError, KeyError)) as info:
        HybridClassifier(**{**TINY, **params}).fit(X, y)
    text = str(info.value)
    assert message in text and "\n" not in text


def test_both_estimators_refuse_a_single_class_naming_it():
    X = np.zeros((6, 2))
    for estimator in (HybridClassifier(**TINY), QuantumKernelSVC()):
        with pytest.raises(DataError, match="at least 2 classes"):
            estimator.fit(X, ["x"] * 6)


def test_threads_auto_sets_one_thread_for_a_small_circuit_as_hqf_run_does(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    X, y = blobs(30)
    torch.set_num_threads(2)
    HybridClassifier(**{**TINY, "threads": "auto", "epochs": 1}).fit(X, y)
    assert torch.get_num_threads() == 1
    torch.set_num_threads(2)
    HybridClassifier(**{**TINY, "threads": None, "epochs": 1}).fit(X, y)
    assert torch.get_num_threads() == 2


def test_validation_fraction_holds_out_stratified_rows():
    X, y = blobs(100)
    clf = HybridClassifier(**{**TINY, "batch_size": 100, "epochs": 1}, validation_fraction=0.25).fit(X, y)
    assert clf.n_iter_ == 1  # 75 training rows: one batch of 100


def test_quantum_kernel_svc_computes_the_angle_encoding_fidelity_kernel():
    """RY(x) angle encoding: ``k(x, x') = Π_q cos²((x_q − x'_q)/2)``, on the support-vector columns."""
    X, y = blobs(40, classes=2)
    svc = QuantumKernelSVC(C=10.0).fit(X, y)
    support = svc.svc_.support_
    rows = svc.kernel_rows(X[:5])
    expected = np.prod(np.cos((X[:5, None, :] - X[None, support, :]) / 2) ** 2, axis=2)
    assert np.allclose(rows[:, support], expected, atol=1e-12)
    assert np.count_nonzero(np.delete(rows, support, axis=1)) == 0
    assert svc.kernel_.evaluations == 40 * 39 // 2 + 5 * len(support)
    assert svc.score(X, y) > 0.9
    proba = svc.predict_proba(X)
    assert np.array_equal(svc.predict(X), svc.classes_[proba.argmax(axis=1)])
    again = pickle.loads(pickle.dumps(svc))
    assert np.array_equal(again.decision_function(X), svc.decision_function(X))


def test_quantum_kernel_svc_runs_its_kernel_on_another_backend_and_under_noise():
    X, y = blobs(30, classes=2)
    exact = QuantumKernelSVC().fit(X, y)
    dense = QuantumKernelSVC(backend="torch-dm").fit(X, y)
    assert np.allclose(dense.kernel_rows(X), exact.kernel_rows(X), atol=1e-12)
    noisy = QuantumKernelSVC(backend="torch-dm", backend_options={"noise": "depolarizing=0.05"}).fit(X, y)
    first = noisy.svc_.support_[0]
    assert noisy.kernel_rows(X[first : first + 1])[0, first] < 0.99  # a point's noisy overlap with itself


def test_hybrid_classifier_under_noise_predicts_on_the_exact_noisy_backend_as_hqf_run_evaluates():
    X, y = blobs(30, classes=2)
    clf = HybridClassifier(**{**TINY, "epochs": 1}, config={"noise": "depolarizing=0.02"}).fit(X, y)
    assert clf.model_.quantum.backend.name == evaluation_backend(clf.config_) != training_backend(clf.config_)
    assert np.array_equal(clf.predict_proba(X), clf.predict_proba(X))  # exact: no sampled branches


def test_quantum_kernel_svc_without_probability_has_no_predict_proba():
    X, y = blobs(30, classes=2)
    svc = QuantumKernelSVC(probability=False).fit(X, y)
    assert not hasattr(svc, "predict_proba")
    assert np.array_equal(svc.predict(X), svc.classes_[(svc.decision_function(X) > 0).astype(int)])


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"kernel": "rbf"}, "'kernel' must be one of fidelity, projected (got 'rbf')"),
        ({"encoder": "reupload"}, "interleaved"),
        ({"encoder_options": {"projection": "always"}}, "has trainable parameters"),
    ],
)
def test_quantum_kernel_svc_rejects_what_is_not_a_fixed_feature_map(params, message):
    X, y = blobs(20, classes=2)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        QuantumKernelSVC(**params).fit(X, y)


def test_pipeline_with_a_scaler_and_a_grid_search_over_n_layers():
    X, y = blobs(90)
    pipeline = make_pipeline(StandardScaler(), HybridClassifier(**TINY))
    search = GridSearchCV(pipeline, {"hybridclassifier__n_layers": [1, 2]}, cv=2).fit(X, y)
    assert [p["hybridclassifier__n_layers"] for p in search.cv_results_["params"]] == [1, 2]
    best = search.best_estimator_[-1]
    assert parse_ansatz_spec(best.config_.ansatz).n_layers == search.best_params_["hybridclassifier__n_layers"]
    assert best.model_.quantum.circuit.n_params > 0
    assert search.score(X, y) > 0.9


@pytest.mark.slow
@pytest.mark.skipif(
    tuple(int(part) for part in sklearn.__version__.split(".")[:2]) < (1, 6),
    reason="check_estimator's expected_failed_checks and callback arrived in scikit-learn 1.6",
)
@pytest.mark.parametrize(
    "estimator", [HybridClassifier(**TINY), QuantumKernelSVC()], ids=["HybridClassifier", "QuantumKernelSVC"]
)
def test_check_estimator(estimator):
    """scikit-learn's acceptance test, every check (failures listed in :data:`EXPECTED_FAILED_CHECKS`)."""
    torch.set_num_threads(1)
    results = {}

    def record(estimator, check_name, exception, status, expected_to_fail, expected_to_fail_reason):
        results.setdefault(status, []).append(f"{check_name}: {exception!r}"[:500])

    check_estimator(
        estimator, expected_failed_checks=EXPECTED_FAILED_CHECKS, on_skip=None, on_fail=None, callback=record
    )
    assert "failed" not in results, results["failed"]
    assert len(results.get("xfail", [])) == len(EXPECTED_FAILED_CHECKS)
    assert len(results["passed"]) >= 50
