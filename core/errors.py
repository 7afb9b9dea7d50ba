"""Every error hqf raises on purpose. The CLI turns these into one-line messages."""

from __future__ import annotations


class HqfError(Exception):
    """Base class of hqf's own errors: a problem the user can fix, explained in one line."""


class InvalidSpecError(HqfError, ValueError):
    """A name such as ``hea8x6`` does not parse."""


class InvalidCircuitError(HqfError, ValueError):
    """A circuit description or its angle matrix is malformed."""


class UnsupportedCircuitError(HqfError, ValueError):
    """A backend is asked for a gate or observable it does not declare (``Capabilities.gates``/``.observables``)."""

    def __init__(self, backend: str, what: str, name: str, supported, because: str | None = None):
        self.backend, self.what, self.name, self.supported = backend, what, name, tuple(sorted(supported))
        listed = ", ".join(self.supported) or "none"
        if because is not None:
            super().__init__(f"backend {backend!r} does not support {what} {name} ({because})")
        else:
            super().__init__(f"backend {backend!r} does not support {what} {name!r} (it supports: {listed})")


class UnknownPluginError(HqfError, KeyError):
    """No plugin of this kind is registered under this name."""

    def __init__(
        self,
        kind: str,
        name: str,
        available: list[str],
        label: str = "available",
        shown: list[str] | None = None,
        note: str = "",
    ):
        self.kind, self.name, self.available = kind, name, available
        listed = ", ".join(sorted(available if shown is None else shown)) or "none"
        super().__init__(f"unknown {kind} {name!r}; {label}: {listed}{note}")

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class PluginRegistrationError(HqfError, TypeError):
    """A plugin registered something that is not what the hook asks for, or a duplicate name."""


class BackendUnavailableError(HqfError, RuntimeError):
    """A registered backend cannot run on this machine (missing package, no GPU, ...)."""

    def __init__(self, name: str, reason: str):
        self.name, self.reason = name, reason
        super().__init__(f"backend {name!r} is unavailable: {reason}")


class DataError(HqfError, ValueError):
    """Input data is missing, malformed or inconsistent."""


class ConfigError(HqfError, ValueError):
    """A run configuration (CLI options or TOML file) is invalid."""


class BackendContractError(HqfError, RuntimeError):
    """A backend broke the :class:`hqf.quantum.interfaces.Backend` contract (e.g. a result of the wrong shape)."""

    def __init__(self, name: str, problem: str):
        self.name, self.problem = name, problem
        super().__init__(f"backend {name!r} broke its contract: {problem}")


class PluginConflictError(HqfError, KeyError):
    """Two plugins register one name; neither is used until one is removed or left out (``HQF_PLUGINS``)."""

    def __init__(self, kind: str, name: str, owners: list[str]):
        self.kind, self.name, self.owners = kind, name, owners
        super().__init__(
            f"{kind} name {name!r} is registered by {' and by '.join(owners)}; uninstall one, or choose with "
            "HQF_PLUGINS=<distribution or entry point>"
        )

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class RunDirInUseError(HqfError, RuntimeError):
    """A run directory is claimed (its ``lock`` file) by a process that is still running."""


class RunFailedError(HqfError, RuntimeError):
    """A run ended without a result (a non-finite loss, an error while training); its directory says why."""

    def __init__(self, directory: str, reason: str):
        self.directory, self.reason = directory, reason
        super().__init__(f"run failed: {reason} (recorded in {directory}/status.json)")


class RunInterrupted(KeyboardInterrupt):
    """A run stopped by SIGINT or SIGTERM after saving a checkpoint; ``exit_code`` is 128 + the signal."""

    def __init__(self, message: str, exit_code: int = 130):
        self.exit_code = exit_code
        super().__init__(message)
