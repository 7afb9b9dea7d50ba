"""Every error hqf raises on purpose. The CLI turns these into one-line messages."""

from __future__ import annotations


class HqfError(Exception):
    """Base class of hqf's own errors: a problem the user can fix, explained in one line."""


class InvalidSpecError(HqfError, ValueError):
    """A name such as ``hea8x6`` does not parse."""


class InvalidCircuitError(HqfError, ValueError):
    """A circuit description or its angle matrix is malformed."""


class UnknownPluginError(HqfError, KeyError):
    """No plugin of this kind is registered under this name."""

    def __init__(self, kind: str, name: str, available: list[str]):
        self.kind, self.name, self.available = kind, name, available
        listed = ", ".join(sorted(available)) or "none"
        super().__init__(f"unknown {kind} {name!r}; available: {listed}")

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
