"""arl's exceptions: a small hierarchy whose messages say what went wrong and what to do."""

from __future__ import annotations

from dataclasses import dataclass


class ArlError(Exception):
    """Base of every error arl raises on purpose."""


@dataclass(frozen=True)
class Location:
    """Where in a file something is: 1-based line and column, as an editor shows them."""

    file: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        if self.line is None:
            return self.file
        if self.column is None:
            return f"{self.file}:{self.line}"
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True)
class Problem:
    """One mistake in an experiment file."""

    location: Location
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{self.location}: {where}{self.message}"


class ConfigError(ArlError):
    """An experiment file is wrong. Carries every problem found, each with its location."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class ComponentLoadError(ArlError):
    """A `module:Class` reference cannot be imported, or is not the expected kind of class."""


class ComponentCrashed(ArlError):
    """A user's component, or the process hosting it, failed during a run.

    ``kind`` and ``detail`` are the remote exception's type name and message;
    ``remote_traceback`` is the traceback text from the process where it was raised.
    """

    def __init__(self, component: str, kind: str, detail: str, remote_traceback: str = "") -> None:
        self.component = component
        self.kind = kind
        self.detail = detail
        self.remote_traceback = remote_traceback
        super().__init__(f"{component}: {kind}: {detail}")


class ProtocolError(ArlError):
    """A message arrived that does not fit the protocol (bad framing, unknown type, version)."""


class RequestTimeout(ArlError):
    """A request got no reply in time."""


class ShutdownTimeout(ArlError):
    """A process did not stop within its bounded shutdown."""


class StartTimeout(ArlError):
    """A process did not report ready within its bounded start."""
