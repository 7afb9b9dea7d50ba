"""Features and labels from a user's ``.csv`` or ``.npz`` file, validated.

Any malformed file is a :class:`~hqf.errors.DataError` naming it: text that is not UTF-8 or not CSV,
ragged rows, cells that are not numbers, NaN, infinity or values beyond float32 (which the model
computes in), arrays of objects (never unpickled: ``allow_pickle=False``), a missing label (empty or
``nan``). Labels may be any strings or numbers; they become class indices in sorted order, numbers
by value (``1`` and ``1.0`` are one class, named ``1``).

A CSV file's first row is a header when some column holds a non-number there and numbers below it;
otherwise it is data (a headerless file whose label column is text keeps its first row). A UTF-8
byte-order mark is skipped.
"""

from __future__ import annotations

import csv
import math
import pathlib
import zipfile
import zlib

import numpy as np

from hqf.errors import DataError

#: the file types a dataset may be read from
FILE_TYPES = (".csv", ".npz")


#: label texts that mean "no label" in a CSV file (compared case-blind)
MISSING_LABELS = ("", "nan", "na", "n/a", "null", "none")
#: the most bytes one array of a .npz file may declare (its header is read before the array)
MAX_ARRAY_BYTES = 1 << 34
#: the largest magnitude a feature may have: the model computes in float32
FLOAT32_MAX = float(np.finfo(np.float32).max)


def _labels_to_index(raw: np.ndarray, source: str) -> tuple[np.ndarray, tuple[str, ...]]:
    names, index = np.unique(raw, return_inverse=True)
    if len(names) < 2:
        raise DataError(f"{source}: the label column has {len(names)} distinct value(s); need at least 2 classes")
    return index.astype(np.int64), tuple(str(v) for v in names)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _is_header(rows: list[list[str]]) -> bool:
    """Whether the first of ``rows`` is a header: some column has a non-number there and only numbers
    below it (or the file has that row alone and it is not all numbers)."""
    first = rows[0]
    if all(_is_number(cell) for cell in first):
        return False
    if len(rows) == 1:
        return True
    texts = [j for j, cell in enumerate(first) if not _is_number(cell)]
    return any(all(j < len(row) and _is_number(row[j]) for row in rows[1:]) for j in texts)


def read_csv_table(path: pathlib.Path) -> tuple[list[str] | None, list[list[str]]]:
    """The header (None when the first row is data, :func:`_is_header`) and the data rows of a CSV file,
    every row as wide as the first; blank lines and a UTF-8 byte-order mark are skipped. A file that is
    not UTF-8 text or not CSV is a DataError."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = [row for row in csv.reader(handle) if row and any(cell.strip() for cell in row)]
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a UTF-8 text file (byte {exc.start}); a .csv must be text") from None
    except csv.Error as exc:
        raise DataError(f"{path}: not a readable CSV file ({exc})") from None
    if not rows:
        raise DataError(f"{path}: the file is empty")
    header = [c.strip() for c in rows[0]] if _is_header(rows) else None
    body = rows[1:] if header is not None else rows
    if not body:
        raise DataError(f"{path}: no data rows after the header")
    width = len(rows[0])
    first_line = 2 if header is not None else 1
    for i, row in enumerate(body):
        if len(row) != width:
            raise DataError(
                f"{path}: line {first_line + i} has {len(row)} fields; expected {width} like the first line"
            )
    return header, body


def as_numbers(table: np.ndarray, names: list[str], first_line: int, path: pathlib.Path) -> np.ndarray:
    """The cells of ``table`` (an object array of strings) as float64; a DataError names the first that is
    not a number."""
    try:
        return table.astype(np.float64)
    except ValueError:
        for (i, j), cell in np.ndenumerate(table):
            if not _is_number(cell):
                raise DataError(
                    f"{path}: line {first_line + i}, column {names[j]!r}: {cell!r} is not a number"
                ) from None
        raise DataError(f"{path}: the features are not numbers") from None


def read_csv(
    path: pathlib.Path, label_column: str | int | None = None
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Features and labels from a CSV file (header optional; labels may be any strings or numbers)."""
    header, body = read_csv_table(path)
    width = len(body[0])
    if width < 2:
        raise DataError(f"{path}: need at least one feature column and a label column (got {width} column)")
    first_line = 2 if header is not None else 1
    label = _column_index(label_column, header, width, path)
    names = header or [str(j) for j in range(width)]
    table = np.array(body, dtype=object)
    raw_labels = csv_labels([cell.strip() for cell in table[:, label]], first_line, names[label], path)
    features = np.delete(table, label, axis=1)
    feature_names = [n for j, n in enumerate(names) if j != label]
    x = as_numbers(features, feature_names, first_line, path)
    check_features(x, path, feature_names, first_line)
    return x, raw_labels, tuple(feature_names)


def csv_labels(cells: list[str], first_line: int | None, column: str, path: pathlib.Path) -> np.ndarray:
    """The label texts of a CSV column (or of a .npz text array: ``first_line`` None), a missing one
    (:data:`MISSING_LABELS`) a DataError naming its line or row; when every label is a number, each is
    written in one form (``1.0`` → ``1``) so that equal numbers are one class."""
    for i, cell in enumerate(cells):
        if cell.lower() in MISSING_LABELS:
            where = f"line {first_line + i}, column {column!r}" if first_line is not None else f"{column!r} row {i}"
            raise DataError(f"{path}: {where}: the label is missing ({cell!r}); give every row a label")
    if cells and all(_is_number(cell) for cell in cells):
        values = [float(cell) for cell in cells]
        if not all(np.isfinite(values)):
            raise DataError(f"{path}: the label column {column!r} contains infinity")
        cells = [str(int(v)) if v.is_integer() else repr(v) for v in values]
    return np.array(cells)


def check_features(
    x: np.ndarray, path: pathlib.Path, names: list[str] | None = None, first_line: int | None = None
) -> None:
    """A DataError naming ``path``, the first bad row (its line in a CSV file starting at ``first_line``)
    and feature, when ``x`` holds NaN, infinity or a value beyond float32's range (the model computes in
    float32)."""
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(x) | (np.abs(x) > FLOAT32_MAX)
    if not bad.any():
        return
    row, col = np.argwhere(bad)[0]
    feature = repr(names[col]) if names is not None and col < len(names) else str(col)
    value = x[row, col]
    what = "NaN or infinity" if not np.isfinite(value) else f"a value beyond float32's range (±{FLOAT32_MAX:.3g})"
    where = f"line {first_line + row}" if first_line is not None else f"row {row}"
    raise DataError(
        f"{path}: features contain {what}: {float(value):g} at {where}, feature {feature} "
        f"({int(bad.sum())} such value(s))"
    )


def _column_index(label_column: str | int | None, header: list[str] | None, width: int, path: pathlib.Path) -> int:
    if label_column is None:
        return width - 1
    if isinstance(label_column, int) or (isinstance(label_column, str) and label_column.lstrip("-").isdigit()):
        index = int(label_column)
        if not -width <= index < width:
            raise DataError(f"{path}: label column {index} is out of range for {width} columns")
        return index % width
    if header is None or label_column not in header:
        known = ", ".join(header) if header else "none (the file has no header row)"
        raise DataError(f"{path}: no column named {label_column!r}; columns: {known}")
    return header.index(label_column)


def read_npz(path: pathlib.Path, label_column: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Features (key ``X`` or ``x``) and labels (key ``label_column``, default ``y``) from a .npz file."""
    label_key = label_column or "y"
    arrays = read_npz_arrays(path, label_key, need_labels=True)
    x, y = arrays["x"], arrays["y"]
    if x.ndim != 2:
        raise DataError(f"{path}: features must be a 2-D array [samples, features] (got shape {list(x.shape)})")
    if y.ndim != 1 or len(y) != len(x):
        raise DataError(
            f"{path}: labels must be 1-D with one per row of features (got {list(y.shape)} for {len(x)} rows)"
        )
    if not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
        raise DataError(f"{path}: features must be real numbers (got dtype {x.dtype})")
    if y.dtype.kind not in "biufUS":
        raise DataError(f"{path}: labels must be integers, numbers or strings (got dtype {y.dtype})")
    if y.dtype.kind in "US":  # text labels: as in a CSV file
        cells = [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in y.tolist()]
        y = csv_labels([cell.strip() for cell in cells], None, label_column or "y", path)
    return x.astype(np.float64), y


def read_npz_arrays(path: pathlib.Path, label_key: str, need_labels: bool) -> dict[str, np.ndarray]:
    """Features (``X`` or ``x``) and, when present, labels (``label_key``) of a .npz archive, read
    without unpickling (``allow_pickle=False``: an object array is a DataError, never executed)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            keys = list(archive.keys())
            feature_key = next((k for k in ("X", "x") if k in keys), None)
            if feature_key is None or (need_labels and label_key not in keys):
                wanted = "'X' (or 'x')" + (f" and {label_key!r}" if need_labels else "")
                raise DataError(f"{path}: expected arrays {wanted}; found {keys}")
            for key in (feature_key, label_key):
                if key in keys:
                    _check_member(archive.zip, key, path)
            arrays = {"x": archive[feature_key]}
            if label_key in keys:
                arrays["y"] = archive[label_key]
            for key, value in zip((feature_key, label_key), arrays.values()):
                if not isinstance(value, np.ndarray):  # numpy hands a member that is not .npy over as bytes
                    raise DataError(f"{path}: member {key!r} is not a NumPy array (.npy); hqf reads only arrays")
    except DataError:
        raise
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "allow_pickle" in text:
            text = "it holds object arrays, which hqf does not load (they would need unpickling)"
        raise DataError(f"{path}: not a readable .npz archive ({text})") from None
    return arrays


def _check_member(archive: zipfile.ZipFile, key: str, path: pathlib.Path) -> None:
    """The ``.npy`` header of member ``key`` checked before numpy allocates its array: the bytes it
    promises at most :data:`MAX_ARRAY_BYTES` and no more than the member holds (a member that is not
    ``.npy`` is left to the reader, which hands it over as bytes)."""
    name = f"{key}.npy" if f"{key}.npy" in archive.namelist() else key
    info = archive.getinfo(name)
    with archive.open(name) as member:
        try:
            version = np.lib.format.read_magic(member)
            reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = reader(member)
        except ValueError:
            return
        if dtype.hasobject:  # pickled objects: refused by the reader (allow_pickle=False), never sized here
            return
        promised = math.prod(shape) * dtype.itemsize
        if promised > MAX_ARRAY_BYTES:
            raise DataError(
                f"{path}: member {key!r} declares shape {list(shape)} of {dtype} ({promised:,} bytes); "
                f"hqf's limit is {MAX_ARRAY_BYTES:,} bytes per array"
            )
        if promised > info.file_size - member.tell():
            raise DataError(
                f"{path}: member {key!r} declares shape {list(shape)} of {dtype} ({promised:,} bytes) but holds "
                f"{info.file_size - member.tell():,}; the file is truncated or corrupt"
            )


def read_file(
    path: str | pathlib.Path, label_column: str | None = None
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], str]:
    """Validated features ``x[n, d]``, class indices ``y[n]``, the class names and the file's name, from a
    .csv or .npz file."""
    path = pathlib.Path(path)
    if not path.exists():
        raise DataError(f"data file not found: {path}")
    if not path.is_file():
        raise DataError(f"data path is not a file: {path}")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        x, raw, _ = read_csv(path, label_column)
    elif suffix == ".npz":
        x, raw = read_npz(path, label_column)
        check_features(x, path)
    else:
        raise DataError(f"{path}: unsupported data file type {suffix!r}; use .csv or .npz")
    if np.issubdtype(raw.dtype, np.floating) and not np.isfinite(raw).all():
        raise DataError(f"{path}: the label column contains NaN or infinity")
    y, class_names = _labels_to_index(raw, str(path))
    return x, y, class_names, path.name
