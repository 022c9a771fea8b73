"""One exception per reason a device refuses a watchlist package, so callers and tests can tell them apart."""

from __future__ import annotations

from edge_agent.errors import EdgeAgentError, SecurityError


class WatchlistRefused(SecurityError):
    """The package must not be used on this device now."""


class NotAWatchlist(WatchlistRefused):
    """The bytes do not start with the watchlist magic."""


class UnknownFormatVersion(WatchlistRefused):
    """A package version this edge-agent cannot read."""


class PackageTampered(WatchlistRefused):
    """Signature, structure, seal or ciphertext does not verify: altered or not from the authority."""


class WrongDevice(WatchlistRefused):
    """The package was not issued to (sealed for) this device."""


class WatchlistExpired(WatchlistRefused):
    """The package's expiry (no later than its deployment's end) has passed."""


class WatchlistNotYetValid(WatchlistRefused):
    """The package's deployment has not started."""


class DeploymentMismatch(WatchlistRefused):
    """The package is bound to a different deployment record than the one pushed with it."""


class ModelMismatch(WatchlistRefused):
    """The templates were made by different models than the device runs; scores would be meaningless."""


class WatchlistBuildError(EdgeAgentError):
    """The central build cannot produce a lawful package from these inputs."""
