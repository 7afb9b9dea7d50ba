import numpy as np
import pytest

from hqf.errors import DataError
from hqf.learn.data.digits import digits
from hqf.learn.data.load import load_dataset
from hqf.learn.data.splits import SPLIT_FRACTIONS
from hqf.learn.data.synthetic import class_priors


def test_dataset_a_shapes_dtypes_split_and_scaling():
    data = load_dataset("dataset-a", samples=3000, seed=3)
    assert (data.n_features, data.n_classes) == (128, 12)
    sizes = np.array([len(data.train), len(data.val), len(data.test)])
    assert sizes.sum() == 3000
    np.testing.assert_allclose(sizes / 3000, SPLIT_FRACTIONS, atol=0.01)
    for split in (data.train, data.val, data.test):
        assert split.x.dtype == np.float32 and split.y.dtype == np.int64 and split.x.shape[1] == 128
        assert set(np.unique(split.y)) == set(range(12))  # stratified: every class in every split
    np.testing.assert_allclose(data.train.x.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(data.train.x.std(axis=0), 1, atol=1e-3)
    assert abs(data.test.x.mean()) < 0.1  # scaled with the training statistics, not its own


def test_imbalance_sets_majority_to_minority_ratio():
    priors = class_priors(12, 6.0)
    assert priors[0] / priors[-1] == pytest.approx(6.0) and np.all(np.diff(priors) < 0)
    data = load_dataset("dataset-a", samples=60_000, seed=0, imbalance=3.0, label_noise=0.0)
    counts = np.bincount(data.train.y)
    assert counts[0] / counts[-1] == pytest.approx(3.0, rel=0.1)
    with pytest.raises(DataError, match="'imbalance' must be >= 1"):
        class_priors(4, 0.5)


def test_same_seed_same_data_other_seed_other_sample():
    a = load_dataset("dataset-b", samples=500, seed=1)
    b = load_dataset("dataset-b", samples=500, seed=1)
    c = load_dataset("dataset-b", samples=500, seed=2)
    assert a.n_features == 512 and a.n_classes == 8
    np.testing.assert_array_equal(a.train.x, b.train.x)
    np.testing.assert_array_equal(a.test.y, b.test.y)
    assert not np.array_equal(a.train.x[:10], c.train.x[:10])


def test_label_noise_flips_exactly_that_fraction_of_train_and_val_and_spares_test():
    clean = load_dataset("dataset-a", samples=4000, seed=5, label_noise=0.0)
    noisy = load_dataset("dataset-a", samples=4000, seed=5, label_noise=0.02)
    np.testing.assert_array_equal(clean.train.x, noisy.train.x)
    for split in ("train", "val"):
        y0, y1 = getattr(clean, split).y, getattr(noisy, split).y
        assert (y0 != y1).sum() == round(0.02 * len(y0))
    np.testing.assert_array_equal(clean.test.y, noisy.test.y)


def test_learnable_but_not_linearly_trivial():
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    data = load_dataset("dataset-a", samples=6000, seed=0, label_noise=0.0)
    score = LinearDiscriminantAnalysis().fit(data.train.x, data.train.y).score(data.test.x, data.test.y)
    assert 2 / 12 < score < 0.8  # well above chance, far from separable by a linear rule


def test_features_option_changes_dimension_and_input_noise_hits_chosen_split():
    data = load_dataset("dataset-a", samples=600, features=16)
    assert data.n_features == 16 and data.train.x.shape == (len(data.train), 16)
    base = load_dataset("dataset-a", samples=600, seed=1)
    noisy = load_dataset("dataset-a", samples=600, seed=1, input_noise=0.5, input_noise_on="test")
    np.testing.assert_array_equal(base.train.x, noisy.train.x)
    assert np.std(noisy.test.x - base.test.x) == pytest.approx(0.5, rel=0.05)
    with pytest.raises(DataError, match="'features' applies to the synthetic datasets only"):
        load_dataset("digits", features=8)


def test_digits_and_downsampling_by_mean_pooling():
    x8, y = digits()
    x4, _ = digits(downsample=True)
    assert x8.shape == (1797, 64) and x4.shape == (1797, 16) and set(y) == set(range(10))
    image = x8[7].reshape(8, 8)
    assert x4[7, 0] == pytest.approx(image[:2, :2].mean()) and x4[7, 15] == pytest.approx(image[6:, 6:].mean())
    data = load_dataset("digits-4x4", seed=0)
    assert data.n_features == 16 and len(data.train) + len(data.val) + len(data.test) == 1797


def test_csv_with_header_named_label_and_string_classes(tmp_path):
    path = tmp_path / "d.csv"
    rows = ["a,kind,b"] + [f"{i},{'cat' if i % 3 else 'dog'},{i * 0.5}" for i in range(30)]
    path.write_text("\n".join(rows) + "\n")
    data = load_dataset(str(path), label_column="kind", seed=0)
    assert data.n_features == 2 and data.class_names == ("cat", "dog")
    assert len(data.train) + len(data.val) + len(data.test) == 30


def test_csv_without_header_uses_last_column_and_npz(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    y = np.arange(40) % 2
    path = tmp_path / "plain.csv"
    path.write_text("\n".join(",".join(map(str, [*row, label])) for row, label in zip(x, y)))
    assert load_dataset(str(path)).n_features == 3
    npz = tmp_path / "d.npz"
    np.savez(npz, X=x, target=y)
    data = load_dataset(str(npz), label_column="target")
    assert (data.n_features, data.n_classes) == (3, 2)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("a,b,y\n1,2,0\n3,x,1\n", r"line 3, column 'b': 'x' is not a number"),
        ("1,2,0\n3,4\n", "line 2 has 2 fields; expected 3"),
        ("1,nan,0\n3,4,1\n5,6,1\n", "NaN or infinity"),
        ("1,2,0\n3,4,0\n5,6,0\n", "need at least 2 classes"),
        ("", "the file is empty"),
        ("a,b,y\n", "no data rows"),
        ("1,2,0\n3,4,1\n5,6,1\n7,8,1\n", r"classes \[0\] have fewer than 3 samples"),
    ],
)
def test_csv_errors_are_clear(tmp_path, content, match):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=match):
        load_dataset(str(path))


def test_file_errors_are_clear(tmp_path):
    with pytest.raises(DataError, match="unknown dataset 'mnist'; built-in: dataset-a, dataset-b, digits, digits-4x4"):
        load_dataset("mnist")
    with pytest.raises(DataError, match="data file not found"):
        load_dataset(str(tmp_path / "missing.csv"))
    (tmp_path / "d.txt").write_text("1,2\n")
    with pytest.raises(DataError, match="unsupported data file type '.txt'"):
        load_dataset(str(tmp_path / "d.txt"))
    np.savez(tmp_path / "d.npz", features=np.zeros((3, 2)))
    with pytest.raises(DataError, match=r"expected arrays 'X' \(or 'x'\) and 'y'"):
        load_dataset(str(tmp_path / "d.npz"))
    (tmp_path / "h.csv").write_text("a,b,y\n1,2,0\n")
    with pytest.raises(DataError, match="no column named 'label'; columns: a, b, y"):
        load_dataset(str(tmp_path / "h.csv"), label_column="label")
    with pytest.raises(DataError, match="needs 'samples' >= 240"):
        load_dataset("dataset-a", samples=100)
