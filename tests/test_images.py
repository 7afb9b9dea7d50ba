"""Image readers (hqf.learn.data.images): each format written here by an independent writer and read back."""

import gzip
import struct

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image as PIL

from hqf.cli import main
from hqf.errors import DataError, HqfError
from hqf.learn.data.images import channel_scaler, parse_source, read_idx, read_images
from hqf.learn.data.load import load_dataset


def write_idx(path, array: np.ndarray, compress: bool = False) -> None:
    """IDX as the MNIST page defines it: 0, 0, type 0x08, ndim, big-endian int32 sizes, the bytes."""
    data = (
        bytes([0, 0, 0x08, array.ndim])
        + struct.pack(f">{array.ndim}i", *array.shape)
        + array.astype(np.uint8).tobytes()
    )
    (gzip.open if compress else open)(path, "wb").write(data)


def mnist_folder(tmp_path, rng, compress=False, n_train=30, n_test=12, side=4):
    x_train = rng.integers(0, 256, size=(n_train, side, side), dtype=np.uint8)
    x_test = rng.integers(0, 256, size=(n_test, side, side), dtype=np.uint8)
    y_train, y_test = np.arange(n_train) % 10, np.arange(n_test) % 10
    suffix = ".gz" if compress else ""
    write_idx(tmp_path / f"train-images-idx3-ubyte{suffix}", x_train, compress)
    write_idx(tmp_path / f"train-labels-idx1-ubyte{suffix}", y_train, compress)
    write_idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}", x_test, compress)
    write_idx(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", y_test, compress)
    return np.concatenate([x_train, x_test]), np.concatenate([y_train, y_test])


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("kind", ["mnist", "fashion-mnist"])
def test_idx_round_trip(tmp_path, compress, kind):
    x, y = mnist_folder(tmp_path, np.random.default_rng(1), compress)
    images = read_images(kind, tmp_path)
    assert images.x.shape == (42, 1, 4, 4) and images.x.dtype == np.uint8
    np.testing.assert_array_equal(images.x[:, 0], x)
    np.testing.assert_array_equal(images.y, y)
    assert len(images.class_names) == 10
    assert (images.class_names[9] == "Ankle boot") == (kind == "fashion-mnist")


def test_truncated_idx_is_a_one_line_error(tmp_path):
    mnist_folder(tmp_path, np.random.default_rng(2))
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(DataError, match="truncated or corrupt") as info:
        read_images("mnist", tmp_path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_idx_with_wrong_magic_or_element_type(tmp_path):
    path = tmp_path / "x.idx"
    path.write_bytes(b"\x01\x02\x08\x01" + struct.pack(">i", 1) + b"\x00")
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(path)
    path.write_bytes(b"\x00\x00\x0d\x01" + struct.pack(">i", 1) + b"\x00\x00\x00\x00")
    with pytest.raises(DataError, match="unsigned bytes"):
        read_idx(path)


def test_truncated_gzip_is_a_one_line_error(tmp_path):
    mnist_folder(tmp_path, np.random.default_rng(3), compress=True)
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(DataError, match="not a readable file") as info:
        read_images("mnist", tmp_path)
    assert "\n" not in str(info.value)


def test_missing_files_name_the_expected_files_and_where_they_are_published(tmp_path):
    with pytest.raises(DataError) as info:
        read_images("mnist", tmp_path)
    text = str(info.value)
    assert "train-images-idx3-ubyte" in text and "t10k-labels-idx1-ubyte[.gz]" in text
    assert "yann.lecun.com" in text and "downloads nothing" in text and "\n" not in text
    with pytest.raises(DataError, match="cifar.html"):
        read_images("cifar100", tmp_path / "nowhere")


def test_mnist_label_out_of_range_is_an_error(tmp_path):
    mnist_folder(tmp_path, np.random.default_rng(4))
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.full(30, 12))
    with pytest.raises(DataError, match="outside 0..9"):
        read_images("mnist", tmp_path)


def cifar_records(rng, n, label_bytes, n_classes):
    labels = rng.integers(0, n_classes, size=(n, label_bytes), dtype=np.uint8)
    pixels = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)  # red plane, green plane, blue plane
    return labels, pixels, np.concatenate([labels, pixels.reshape(n, -1)], axis=1).tobytes()


def test_cifar10_binary_round_trip_with_its_class_names(tmp_path):
    rng = np.random.default_rng(5)
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    xs, ys = [], []
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        labels, pixels, data = cifar_records(rng, 3, 1, 10)
        (folder / name).write_bytes(data)
        xs.append(pixels)
        ys.append(labels[:, 0])
    names = ["plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    (folder / "batches.meta.txt").write_text("\n".join(names) + "\n\n")
    images = read_images("cifar10", tmp_path)  # the parent folder is enough
    assert images.x.shape == (18, 3, 32, 32)
    np.testing.assert_array_equal(images.x, np.concatenate(xs))
    np.testing.assert_array_equal(images.y, np.concatenate(ys))
    assert images.class_names == tuple(names)


def test_cifar100_uses_the_fine_label(tmp_path):
    rng = np.random.default_rng(6)
    parts = [cifar_records(rng, 4, 2, 100) for _ in range(2)]
    for name, (_, _, data) in zip(("train.bin", "test.bin"), parts):
        (tmp_path / name).write_bytes(data)
    images = read_images("cifar100", tmp_path)
    np.testing.assert_array_equal(images.y, np.concatenate([labels[:, 1] for labels, _, _ in parts]))
    np.testing.assert_array_equal(images.x, np.concatenate([pixels for _, pixels, _ in parts]))
    assert len(images.class_names) == 100


def test_cifar_file_that_is_not_whole_records_is_an_error(tmp_path):
    rng = np.random.default_rng(7)
    for name in ("train.bin", "test.bin"):
        (tmp_path / name).write_bytes(cifar_records(rng, 2, 2, 100)[2])
    (tmp_path / "test.bin").write_bytes((tmp_path / "test.bin").read_bytes()[:-1])
    with pytest.raises(DataError, match="3074-byte records"):
        read_images("cifar100", tmp_path)


def test_stl10_binary_round_trip_undoes_the_column_major_layout(tmp_path):
    rng = np.random.default_rng(8)
    folder = tmp_path / "stl10_binary"
    folder.mkdir()
    xs, ys = [], []
    for part, n in (("train", 3), ("test", 2)):
        x = rng.integers(0, 256, size=(n, 3, 96, 96), dtype=np.uint8)  # [C, H, W]
        y = rng.integers(1, 11, size=n, dtype=np.uint8)
        (folder / f"{part}_X.bin").write_bytes(np.ascontiguousarray(x.transpose(0, 1, 3, 2)).tobytes())  # column-major
        (folder / f"{part}_y.bin").write_bytes(y.tobytes())
        xs.append(x)
        ys.append(y.astype(np.int64) - 1)
    images = read_images("stl10", tmp_path)
    np.testing.assert_array_equal(images.x, np.concatenate(xs))
    np.testing.assert_array_equal(images.y, np.concatenate(ys))
    (folder / "test_y.bin").write_bytes(bytes([0, 3]))
    with pytest.raises(DataError, match="label 0 at record 0 is outside 1..10"):
        read_images("stl10", tmp_path)


def image_folder(tmp_path, rng, colour_in=None, size=(6, 5)):
    """Two classes of three grey PNGs each (the first of ``colour_in`` RGB instead); returns the pixel arrays."""
    arrays = {}
    for name in ("cat", "dog"):
        (tmp_path / name).mkdir()
        for i in range(3):
            if name == colour_in and i == 0:
                array = rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)
                PIL.fromarray(array, "RGB").save(tmp_path / name / f"{i}.png")
            else:
                array = rng.integers(0, 256, size=size, dtype=np.uint8)
                PIL.fromarray(array, "L").save(tmp_path / name / f"{i}.png")
            arrays[(name, i)] = array
    return arrays


def test_image_folder_round_trip_grey(tmp_path):
    arrays = image_folder(tmp_path, np.random.default_rng(9))
    images = read_images("images", tmp_path)
    assert images.x.shape == (6, 1, 6, 5) and images.class_names == ("cat", "dog")
    np.testing.assert_array_equal(images.y, [0, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(images.x[4, 0], arrays[("dog", 1)])


def test_image_folder_with_one_colour_image_is_read_as_colour(tmp_path):
    arrays = image_folder(tmp_path, np.random.default_rng(10), colour_in="dog")
    images = read_images("images", tmp_path)
    assert images.x.shape == (6, 3, 6, 5)
    np.testing.assert_array_equal(images.x[3], arrays[("dog", 0)].transpose(2, 0, 1))
    for channel in range(3):  # a grey image repeated on every channel
        np.testing.assert_array_equal(images.x[0, channel], arrays[("cat", 0)])


def test_image_folder_errors(tmp_path):
    image_folder(tmp_path, np.random.default_rng(11))
    PIL.fromarray(np.zeros((7, 7), dtype=np.uint8)).save(tmp_path / "dog" / "9.png")
    with pytest.raises(DataError, match="hqf does not resize"):
        read_images("images", tmp_path)
    (tmp_path / "dog" / "9.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(DataError, match="not a readable image") as info:
        read_images("images", tmp_path)
    assert "\n" not in str(info.value)
    (tmp_path / "dog" / "9.png").unlink()
    (tmp_path / "bird").mkdir()
    with pytest.raises(DataError, match="without images: bird"):
        read_images("images", tmp_path)


def test_truncated_png_is_an_error(tmp_path):
    image_folder(tmp_path, np.random.default_rng(12))
    path = tmp_path / "cat" / "1.png"
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(DataError, match=str(path)):
        read_images("images", tmp_path)


def test_parse_source():
    assert parse_source("mnist:/data/m") is not None and parse_source("CIFAR10:x")[0] == "cifar10"
    assert parse_source("digits") is None and parse_source("c:/data.csv") is None and parse_source("mnist:") is None


def test_load_dataset_keeps_uint8_until_one_float32_copy_scaled_per_channel(tmp_path):
    rng = np.random.default_rng(13)
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        pixels = rng.integers(0, 256, size=(10, 3072), dtype=np.uint8)
        (tmp_path / name).write_bytes(
            np.concatenate([np.arange(10, dtype=np.uint8)[:, None], pixels], axis=1).tobytes()
        )
    dataset = load_dataset(f"cifar10:{tmp_path}", seed=0)
    assert dataset.image_shape == (3, 32, 32) and dataset.n_features == 3072
    assert dataset.info["image_shape"] == [3, 32, 32]
    assert len(dataset.train) + len(dataset.val) + len(dataset.test) == 60
    mean, std = dataset.scaler
    assert all(split.x.dtype == np.float32 for split in (dataset.train, dataset.val, dataset.test))
    # one mean and std per channel, fitted on the training split: undoing the scaling gives its pixels back
    for c in range(3):
        block = slice(c * 1024, (c + 1) * 1024)
        assert np.unique(mean[block]).size == 1 and np.unique(std[block]).size == 1
    raw = dataset.train.x.astype(np.float64) * std + mean
    np.testing.assert_allclose(raw, np.round(raw), atol=1e-3)
    channels = np.round(raw).reshape(len(raw), 3, -1)  # the training split's pixels, exactly
    np.testing.assert_allclose(mean[::1024], channels.mean(axis=(0, 2)), rtol=1e-12)
    np.testing.assert_allclose(std[::1024], channels.std(axis=(0, 2)), rtol=1e-12)


def test_channel_scaler_against_numpy_in_float64():
    rng = np.random.default_rng(14)
    x = rng.integers(0, 256, size=(37, 2 * 3 * 4)).astype(np.float32)
    mean, std = channel_scaler(x, (2, 3, 4))
    per_channel = x.astype(np.float64).reshape(37, 2, 12)
    np.testing.assert_allclose(mean, np.repeat(per_channel.mean(axis=(0, 2)), 12), rtol=1e-12)
    np.testing.assert_allclose(std, np.repeat(per_channel.std(axis=(0, 2)), 12), rtol=1e-12)


def test_cli_names_a_corrupt_file_in_one_line(tmp_path):
    mnist_folder(tmp_path, np.random.default_rng(15))
    path = tmp_path / "t10k-labels-idx1-ubyte"
    path.write_bytes(path.read_bytes()[:-3])
    result = CliRunner().invoke(
        main, ["run", "--dataset", f"mnist:{tmp_path}", "--out", str(tmp_path / "run"), "--quiet"]
    )
    assert result.exit_code == 2, result.output
    assert "truncated or corrupt" in result.output and "Traceback" not in result.output
    assert len([line for line in result.output.splitlines() if line.strip()]) == 1
    assert issubclass(DataError, HqfError)
