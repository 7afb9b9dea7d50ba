"""``RunConfig``: every setting of one training run, from CLI options or a TOML file (the same keys).

The defaults are the embedded default run of ``hqf run``: the torch backend, ``hea8x6``, the angle
encoder, gated fusion, both regularizers, on a Dataset-A-like sample sized to train in about a minute
on two CPU cores. Keys are the field names below; a TOML file may spell them with ``-`` or ``_``.

The core owns the fields; a plugin's settings live in its table, ``[regularizer_options.curvature]``,
``[backbone_options.transformer]``, ``[baseline_options.qsvm]``, read by the options class the plugin
declares (:mod:`hqf.registry.options`; defaults filled in for every registered plugin that has one).
The flat keys of earlier configurations (``lambda_stab``, ``gamma_curv``, ``curvature_every``,
``hidden``, ``transformer_dim``, ...) are declared by those classes as aliases of their options and
are accepted wherever a key is (a flat key overrides the same option in its table).
"""

from __future__ import annotations

import difflib
import math
import pathlib
from typing import Any

import attrs
import tomli_w

from hqf.errors import ConfigError
from hqf.learn.option_tables import (
    CHOSEN,
    MAX_WIDTH,
    OPTION_TABLES,
    by_name,
    fold_flat_keys,
    plugin_flat_keys,
    registered,
    tables,
)
from hqf.registry.options import read_options

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib

OPTIMIZERS = ("adam", "sgd", "rmsprop")
QUANTUM_INPUTS = ("latent", "input")
NOISE_SPLITS = ("all", "train", "test")
#: aliases accepted for ``dataset``
DATASET_ALIASES = {"a": "dataset-a", "b": "dataset-b"}
#: keys accepted in place of a field name
KEY_ALIASES = {"regularizer": "regularizers"}
#: the regularizers of the default run (their curve columns come first in every curves file)
DEFAULT_REGULARIZERS = ("stability", "curvature")
#: the table of a run directory's config.toml recording what ``auto`` settings resolved to
#: (:func:`resolved_toml`); read back, it is skipped, so the file still reproduces the run
RESOLVED = "resolved"
#: the largest seed (``torch.manual_seed`` takes 64 bits; sums such as ``seed + rank`` must still fit)
MAX_SEED = 2**63 - 1
#: the most samples a run may ask for (the synthetic sets generate this many rows before any split)
MAX_SAMPLES = 100_000_000
#: the most repetitions of the latency measurement (each one a forward pass over a batch)
MAX_REPEATS = 10_000
#: the largest configuration file read, in bytes, and the deepest nesting of its tables and lists
MAX_CONFIG_BYTES = 16 << 20
MAX_CONFIG_DEPTH = 32


def _fail(message: str) -> None:
    raise ConfigError(message)


def _one_of(choices: tuple[str, ...]):
    def check(_, attribute, value):
        if value not in choices:
            _fail(f"'{attribute.name}' must be one of {', '.join(choices)} (got {value!r})")

    return check


def _at_least(bound: float, optional: bool = False):
    def check(_, attribute, value):
        if optional and value is None:
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < bound:
            _fail(f"'{attribute.name}' must be a number >= {bound} (got {value!r})")

    return check


def _integer(bound: int, optional: bool = False, most: int | None = None, limit: str = ""):
    """An integer ``>= bound`` (and ``<= most``, the limit named in the message as ``limit``)."""

    def check(_, attribute, value):
        if optional and value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int) or value < bound:
            _fail(f"'{attribute.name}' must be an integer >= {bound} (got {value!r})")
        if most is not None and value > most:
            _fail(f"'{attribute.name}' must be at most {most:,} ({limit}; got {value!r})")

    return check


def _positive(_, attribute, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        _fail(f"'{attribute.name}' must be a number > 0 (got {value!r})")


def _fraction(_, attribute, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        _fail(f"'{attribute.name}' must be in [0, 1) (got {value!r})")


def _flag(_, attribute, value):
    if not isinstance(value, bool):
        _fail(f"'{attribute.name}' must be true or false (got {value!r})")


def _threads(_, attribute, value):
    if value != "auto" and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ConfigError(f"'{attribute.name}' must be \"auto\" or an integer >= 1 (got {value!r})")


def _text(_, attribute, value):
    if not isinstance(value, str) or not value.strip():
        _fail(f"'{attribute.name}' must be a non-empty string (got {value!r})")


def _optional_text(_, attribute, value):
    if value is not None:
        _text(_, attribute, value)


def _names(value: Any) -> tuple[str, ...]:
    """``regularizers``: a list of names; ``"none"`` (alone) or an empty list means none."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"'regularizers' must be a list of names (got {value!r})")
    names = tuple(value)
    if "none" in names:
        if len(names) > 1:
            raise ConfigError(f"'regularizers': 'none' cannot be combined with others (got {list(names)})")
        return ()
    if len(set(names)) != len(names):
        raise ConfigError(f"'regularizers' lists a name twice (got {list(names)})")
    return names


def _widths(value: Any) -> tuple[int, ...]:
    """``head``: a list of positive integers (hidden widths)."""
    widths = isinstance(value, (list, tuple)) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    if not widths or not all(v >= 1 for v in value):
        raise ConfigError(f"'head' must be a list of positive integers (hidden widths; got {value!r})")
    if any(v > MAX_WIDTH for v in value):
        raise ConfigError(f"'head' widths must be at most {MAX_WIDTH:,} (hqf's widest layer; got {list(value)!r})")
    return tuple(value)


#: keys whose default is a number but that may be None, written as "all" in TOML (which has no null)
ALL_KEYS = ("samples",)


def _all_to_none(value: Any) -> Any:
    return None if isinstance(value, str) and value.lower() == "all" else value


def _dataset(value: Any) -> Any:
    return DATASET_ALIASES.get(value.lower(), value) if isinstance(value, str) else value


def _noise(value: Any) -> str:
    """``noise``: the text form of a :class:`hqf.quantum.noise.NoiseModel` (``""``: none), from a text
    (``"depolarizing=0.02,readout=0.03"``) or a table (``{depolarizing = 0.02, pauli = [0.01, 0, 0.02]}``)."""
    # at use: the noise model imports numpy and the circuit vocabulary, which `hqf --help` does not need
    from hqf.quantum.noise import NoiseModel  # noqa: PLC0415 — import cost (see above)

    if isinstance(value, dict):
        value = ",".join(f"{name}={_noise_value(name, v)}" for name, v in value.items())
    if not isinstance(value, str):
        raise ConfigError(f"'noise' must be a text such as \"depolarizing=0.02\" or a [noise] table (got {value!r})")
    try:
        model = NoiseModel.parse(value)
    except ValueError as exc:
        raise ConfigError(f"'noise': {exc}") from None
    return str(model) if model.rules or model.readout else ""


def _noise_value(name: str, value: Any) -> str:
    """One value of a ``[noise]`` table in the text form: a number, or a list of numbers joined by ``:``."""
    values = value if isinstance(value, (list, tuple)) else [value]
    if not values or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise ConfigError(f"'noise.{name}' must be a number or a list of numbers (got {value!r})")
    return ":".join(repr(float(v)) for v in values)


def _options(key: str):
    def convert(value: Any) -> dict:
        if not isinstance(value, dict):
            raise ConfigError(f"'{key}' must be a table of key = value (got {value!r})")
        return dict(value)

    return convert


def _default(field: str) -> Any:
    return attrs.fields_dict(RunConfig)[field].default


@attrs.frozen(init=False)
class RunConfig:
    """One run: model, training, data and evaluation settings (see docs/method.md for each).

    ``RunConfig(**keys)`` takes the fields below and the plugins' flat keys (``curvature_every=5``),
    which it folds into their option tables (:func:`hqf.learn.option_tables.fold_flat_keys`).
    """

    # -- model --------------------------------------------------------------------------------
    backend: str = attrs.field(default="torch", validator=_text)
    ansatz: str = attrs.field(default="hea8x6", validator=_text)
    encoder: str = attrs.field(default="angle", validator=_text)
    encoder_options: dict = attrs.field(factory=dict, converter=_options("encoder_options"))
    fusion: str = attrs.field(default="gated", validator=_text)
    #: a registered classical baseline model replacing the whole hybrid (``hqf list``); None: the hybrid
    baseline: str | None = attrs.field(default=None, validator=_optional_text)
    #: options of the baselines by name (e.g. ``qsvm``'s ``C``, ``kernel``, ``qubits``; docs/seeds.md)
    baseline_options: dict = attrs.field(factory=dict, converter=tables("baseline_options"))
    #: a registered backbone (``hqf list``): mlp, transformer, cnn, resnet
    backbone: str = attrs.field(default="mlp", validator=_text)
    #: options of the backbones by name (mlp: hidden; transformer: dim, layers, heads, patch; cnn: channels,
    #: kernel, pool, dropout, fc, image_shape)
    backbone_options: dict = attrs.field(factory=dict, converter=tables("backbone_options"))
    #: k, the width of H_c
    latent: int = attrs.field(default=32, validator=_integer(1, most=MAX_WIDTH, limit="hqf's widest layer"))
    quantum_input: str = attrs.field(default="latent", validator=_one_of(QUANTUM_INPUTS))
    #: hidden widths of the classical head after the fusion (Linear → ReLU → Dropout each); []: one Linear
    head: tuple[int, ...] = attrs.field(default=(), converter=_widths)
    head_dropout: float = attrs.field(default=0.0, validator=_fraction)
    dtype: str = attrs.field(default="complex128", validator=_text)
    device: str = attrs.field(default="cpu", validator=_text)
    #: threads of torch and of the simulator: a number, or "auto" (hqf.learn.process.runtime.resolve_threads)
    threads: int | str = attrs.field(default="auto", validator=_threads)
    gradient: str = attrs.field(default="auto", validator=_text)
    #: the noise model of training and evaluation, as text (hqf.quantum.noise.NoiseModel.parse; ""/none: none)
    noise: str = attrs.field(default="", converter=_noise)
    #: shorthand: depolarizing probability after every gate (``noise = "depolarizing=p"``); 0: none
    depolarizing: float = attrs.field(default=0.0, validator=_fraction)
    backend_options: dict = attrs.field(factory=dict, converter=_options("backend_options"))
    # -- loss and training ---------------------------------------------------------------------
    regularizers: tuple[str, ...] = attrs.field(default=DEFAULT_REGULARIZERS, converter=_names)
    #: options of the regularizers by name (stability: weight; curvature: weight, every, probes, batch, scope,
    #: method, vectorize)
    regularizer_options: dict = attrs.field(factory=dict, converter=tables("regularizer_options"))
    optimizer: str = attrs.field(default="adam", validator=_one_of(OPTIMIZERS))
    lr: float = attrs.field(default=1e-3, validator=_positive)
    momentum: float = attrs.field(default=0.0, validator=_fraction)
    weight_decay: float = attrs.field(default=0.0, validator=_at_least(0.0))
    batch_size: int = attrs.field(default=256, validator=_integer(1))
    epochs: int = attrs.field(default=8, validator=_integer(1))
    max_iterations: int | None = attrs.field(default=None, validator=_integer(1, optional=True))
    eps: float = attrs.field(default=1e-3, validator=_at_least(0.0))
    delta: float = attrs.field(default=1e-4, validator=_at_least(0.0))
    grad_ema: float = attrs.field(default=0.9, validator=_fraction)
    eval_every: int | None = attrs.field(default=None, validator=_integer(1, optional=True))
    #: every this many iterations, the full-batch gradient norm on ``full_grad_samples`` training rows
    #: (a second definition of iterations to ε, hqf.learn.training.probes; None: not measured)
    full_grad_every: int | None = attrs.field(default=None, validator=_integer(1, optional=True))
    full_grad_samples: int = attrs.field(default=8192, validator=_integer(1))
    seed: int = attrs.field(default=0, validator=_integer(0, most=MAX_SEED, limit="2**63 - 1, seeds are 64-bit"))
    # -- data ------------------------------------------------------------------------------------
    dataset: str = attrs.field(default="dataset-a", converter=_dataset, validator=_text)
    #: samples before the split; None (TOML: "all") for a dataset's full size
    samples: int | None = attrs.field(
        default=60000,
        converter=_all_to_none,
        validator=_integer(1, optional=True, most=MAX_SAMPLES, limit='hqf\'s limit; "all" takes a whole file'),
    )
    data_seed: int | None = attrs.field(
        default=None, validator=_integer(0, optional=True, most=MAX_SEED, limit="2**63 - 1, seeds are 64-bit")
    )
    imbalance: float | None = attrs.field(default=None, validator=_at_least(1.0, optional=True))
    label_noise: float | None = attrs.field(default=None, validator=attrs.validators.optional(_fraction))
    label_column: str | None = attrs.field(default=None, converter=attrs.converters.optional(str))
    features: int | None = attrs.field(default=None, validator=_integer(2, optional=True))
    input_noise: float = attrs.field(default=0.0, validator=_at_least(0.0))
    input_noise_on: str = attrs.field(default="all", validator=_one_of(NOISE_SPLITS))
    # -- evaluation ------------------------------------------------------------------------------
    vai_sigma: float = attrs.field(default=0.05, validator=_positive)
    vai_samples: int = attrs.field(default=512, validator=_integer(2))
    vai_draws: int = attrs.field(default=8, validator=_integer(2))
    latency_repeats: int = attrs.field(
        default=30, validator=_integer(1, most=MAX_REPEATS, limit="hqf's limit on timing repeats")
    )
    # -- output ----------------------------------------------------------------------------------
    #: write TensorBoard event files into the run directory (needs the ``hqf[tensorboard]`` extra)
    tensorboard: bool = attrs.field(default=False, validator=_flag)
    #: save a checkpoint every this many iterations (and always at each epoch's end; 0: only there)
    checkpoint_every: int = attrs.field(default=200, validator=_integer(0))

    def __init__(self, **values: Any) -> None:
        chosen = {field: values.get(field, _default(field)) for field in CHOSEN.values()}
        self.__attrs_init__(**fold_flat_keys(values, chosen, reserved=self.keys()))

    def __attrs_post_init__(self) -> None:
        if self.noise and self.depolarizing:
            _fail(
                "give either 'noise' or its shorthand 'depolarizing', not both "
                f"(got noise = {self.noise!r}, depolarizing = {self.depolarizing!r})"
            )

    @property
    def noise_text(self) -> str:
        """The run's noise model as text: :attr:`noise`, or ``depolarizing=p`` from the shorthand; ``""``: none."""
        return self.noise or (f"depolarizing={self.depolarizing!r}" if self.depolarizing else "")

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        return tuple(f.name for f in attrs.fields(cls))

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "configuration") -> RunConfig:
        """A validated configuration from plain keys (``-`` or ``_``): fields and the plugins' flat keys
        (a flat key overrides its option in the table); unknown keys are a ConfigError."""
        try:
            known = {*cls.keys(), *plugin_flat_keys(reserved=cls.keys())}
            values: dict[str, Any] = {}
            for raw_key, value in data.items():
                key = str(raw_key).replace("-", "_")
                key = KEY_ALIASES.get(key, key)
                if key == RESOLVED and isinstance(value, dict):
                    continue  # a run directory's record of what "auto" became, not a setting
                if key not in known:
                    close = difflib.get_close_matches(key, known, n=1)
                    hint = f"; did you mean {close[0]!r}?" if close else ""
                    raise ConfigError(f"unknown key {raw_key!r}{hint} (known keys: {', '.join(sorted(known))})")
                if key in values:
                    raise ConfigError(f"key {key!r} is given twice")
                values[key] = value
            return cls(**values)
        except (ConfigError, TypeError, ValueError) as exc:
            raise ConfigError(f"{source}: {exc}") from None

    @classmethod
    def from_toml(cls, path: str | pathlib.Path) -> RunConfig:
        """The configuration a TOML file describes (top-level keys, as in :meth:`to_dict`)."""
        return cls.from_dict(read_toml(path), source=str(path))

    def to_dict(self) -> dict[str, Any]:
        """Plain values (lists, not tuples; ``None`` kept) that :meth:`from_dict` reads back."""
        data = attrs.asdict(self, recurse=False)
        data["regularizers"] = list(self.regularizers)
        data["head"] = list(self.head)
        for field in OPTION_TABLES.values():
            data[field] = {name: dict(options) for name, options in data[field].items()}
        return data

    def to_toml(self) -> str:
        """The configuration as TOML: ``None`` is written as ``"all"`` for :data:`ALL_KEYS` and left out
        otherwise (those keys default to ``None``), so :meth:`from_toml` reads back the same value."""
        data = {k: ("all" if v is None and k in ALL_KEYS else v) for k, v in self.to_dict().items()}
        return tomli_w.dumps({k: v for k, v in data.items() if v is not None})

    def replace(self, **changes: Any) -> RunConfig:
        """A copy with some keys changed (:meth:`updated`)."""
        return self.updated(changes)

    def updated(self, changes: dict[str, Any], source: str = "configuration") -> RunConfig:
        """A copy with some keys changed, validated like :meth:`from_dict`; an option table given here
        changes only the options it names."""
        data = self.to_dict()
        for raw_key, value in changes.items():
            key = str(raw_key).replace("-", "_")
            key = KEY_ALIASES.get(key, key)
            kind = next((k for k, field in OPTION_TABLES.items() if field == key), None)
            if kind is None:
                data[key] = value
                continue
            chosen = changes.get(CHOSEN[kind], getattr(self, CHOSEN[kind])) if kind in CHOSEN else None
            try:
                given = by_name(kind, value, chosen)
            except ConfigError as exc:
                raise ConfigError(f"{source}: {exc}") from None
            for name, options in given.items():
                data[key][name] = {**data[key].get(name, {}), **options}
        return type(self).from_dict(data, source=source)

    def plugin_options(self, kind: str, name: str) -> Any:
        """The options of plugin ``name`` of ``kind``: an instance of its options class, or its table as
        given (a dict, empty when absent) where it declares none."""
        table = getattr(self, OPTION_TABLES[kind]).get(name, {})
        entry = next((e for e in registered(kind) if e.name == name), None)
        options = getattr(entry.cls, "options", None) if entry is not None else None
        if options is None:
            return dict(table)
        return read_options(options, table, f"{OPTION_TABLES[kind]}.{name}")

    def value(self, key: str) -> Any:
        """A field, or the option a plugin's flat key names (``config.value("curvature_every")``)."""
        if key in attrs.fields_dict(type(self)):
            return getattr(self, key)
        flat = plugin_flat_keys(reserved=self.keys())
        if key not in flat:
            raise ConfigError(f"unknown key {key!r}")
        kind, name, option = flat[key]
        return getattr(self.plugin_options(kind, name), option)


def resolved_toml(resolved: dict[str, Any]) -> str:
    """The ``[resolved]`` table appended to a run directory's config.toml: beside each requested key
    (e.g. ``gradient = "auto"``), the value this run used; ``None`` values are left out."""
    values = {k: v for k, v in resolved.items() if v is not None}
    if not values:
        return ""
    return "\n# what the requested values above resolved to in this run (a record: not read back as settings)\n" + (
        tomli_w.dumps({RESOLVED: values})
    )


def read_resolved(path: str | pathlib.Path) -> dict[str, Any]:
    """The ``[resolved]`` table of a run directory's config.toml (empty when it has none)."""
    table = read_toml(path).get(RESOLVED, {})
    return dict(table) if isinstance(table, dict) else {}


def read_toml(path: str | pathlib.Path) -> dict[str, Any]:
    """A TOML file's top-level table; a missing file, one over :data:`MAX_CONFIG_BYTES`, a syntax error
    or tables and lists nested deeper than :data:`MAX_CONFIG_DEPTH` is a ConfigError."""
    path = pathlib.Path(path)
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: not a configuration file (larger than hqf's limit of {MAX_CONFIG_BYTES >> 20} MiB)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a TOML file (not UTF-8 text: byte {exc.start})") from None
    too_deep = ConfigError(f"{path}: tables or lists nested deeper than {MAX_CONFIG_DEPTH} levels (hqf's limit)")
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:
        raise too_deep from None
    if nesting_depth(table) > MAX_CONFIG_DEPTH:
        raise too_deep
    return table


def nesting_depth(value: Any) -> int:
    """How deeply tables and lists nest in ``value`` (a scalar: 0; ``{"a": [1]}``: 2), without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        elif not isinstance(item, (list, tuple)):
            continue
        deepest = max(deepest, depth + 1)
        stack.extend((child, depth + 1) for child in item)
    return deepest
