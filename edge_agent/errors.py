"""One error type for everything a user can get wrong, so the CLI can print it without a traceback.

Every message names what is wrong and what to do about it (DEVELOPERS.md: bad input gets a clear error).
"""

from __future__ import annotations


class EdgeAgentError(Exception):
    """A problem the user or operator can fix; ``hint`` says how."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ImageError(EdgeAgentError):
    """An input image or video cannot be read or is unusable."""


class ModelError(EdgeAgentError):
    """A model file is missing, altered, or cannot run here."""


class ConfigError(EdgeAgentError):
    """A configuration file or value is invalid."""


class SecurityError(EdgeAgentError):
    """A signature, key, seal or package failed verification."""
