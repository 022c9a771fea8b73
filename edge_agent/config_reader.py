"""One reader for every TOML settings file: bounds, defaults and help live on the dataclass fields.

A settings dataclass declares each key with ``setting(kind, default, help, ...)`` (a
``dataclasses.field`` whose metadata holds a ``Spec``); ``read_section`` walks the fields and
reads each with the one checking function for its kind. So the agent config, the hardware
profiles and the control room's ``[broker]`` table refuse the same things with the same words:
unknown keys, wrong types, values out of bounds, inline secrets, key files readable by others.
Errors name the file, the key path, the bad value and what is allowed; a secret is never echoed.

Stdlib only on purpose (frigate's ``Field(gt=..., le=...)`` is the model, pydantic is not: it adds
~90 ms and ~17 MiB to start-up on x86, several times that on a Pi Zero 2 W), and no OpenCV or
LiteRT: a config is parsed before anything heavy loads.
"""

from __future__ import annotations

import re
import stat
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import Field, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from edge_agent.errors import ConfigError
from edge_agent.identifiers import IdentifierError
from edge_agent.safe_load import toml_loads

T = TypeVar("T")

# Key names that can only ever hold a secret: never accepted inline, whatever the section.
SECRET_NAMES = re.compile(r"(^|_)(password|passphrase|secret|token|private_key|psk)$")
# Keys whose values are paths to key material: the value must look like a path, not a key.
KEY_PATH_NAMES = re.compile(r"(_key|key_file|credentials_file)$")
INLINE_KEY = re.compile(r"-----BEGIN|\n|^(?!/)[A-Za-z0-9+/]{40,}={0,2}$")

KINDS = ("string", "identifier", "choice", "integer", "number", "boolean", "path", "paths", "parsed")
# What a path setting must be when files are checked: an existing file or directory; "any": not
# checked; "file_or_absent"/"dir_or_absent": may be missing (created or pushed later), but if
# something is there it must be of that type (a directory where a file belongs is an error).
MUSTS = ("file", "dir", "any", "file_or_absent", "dir_or_absent")


class _Required:
    def __repr__(self) -> str:
        return "required"


REQUIRED: Any = _Required()


@dataclass(frozen=True)
class Derived:
    """A default computed from values read before it (the same section's, plus ``env``)."""

    compute: Callable[[Mapping[str, Any]], Any]
    doc: str  # how the default is derived, for documentation


@dataclass(frozen=True)
class Spec:
    """How one key is read: its kind, default, bounds and help."""

    kind: str
    default: Any = REQUIRED  # a value, REQUIRED, or Derived
    help: str = ""
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False  # number: lo itself is not allowed
    choices: tuple[str, ...] = ()
    fold_case: bool = False  # choice: any case accepted, stored upper-case
    check: Callable[[Any], Any] | None = None  # identifier: the one rule; parsed: value -> object (raises ConfigError)
    allowed: str = ""  # parsed: what is allowed, for the error
    must: str = "file"
    private: bool = False  # path: a private key file, owner-only mode
    optional: bool = False  # number: absent means None

    def __post_init__(self) -> None:
        if self.kind not in KINDS or self.must not in MUSTS or (self.kind in ("identifier", "parsed") and self.check is None):
            raise ValueError(f"bad setting spec {self}")

    def checker(self) -> Callable[[Any], Any]:
        if self.check is None:
            raise ValueError(f"setting spec {self} has no check")
        return self.check


def setting(kind: str, default: Any = REQUIRED, help: str = "", **options: Any) -> Any:
    """A dataclass field read by ``read_section``: ``port: int = setting("integer", 8883, "...", lo=1, hi=65535)``.

    The field itself has no dataclass default (the reader always passes every value)."""
    return field(metadata={"spec": Spec(kind, default, help, **options)})


def spec_of(f: Field[Any]) -> Spec | None:
    return f.metadata.get("spec")


def specs(cls: type) -> list[tuple[str, Spec]]:
    """(key, spec) for every field of ``cls`` read from the file, in declaration order."""
    return [(f.name, s) for f in fields(cls) if (s := spec_of(f)) is not None]


def read_file_bytes(path: Path, what: str, missing_hint: str, directory_hint: str) -> bytes:
    """The bytes of an input file (config, deployment, package, audit log). A missing file, a
    directory where the file should be and an unreadable one are each a ConfigError naming
    ``what``, never a traceback: one wording for every file the project reads."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} not found", missing_hint) from None
    except IsADirectoryError:
        raise ConfigError(f"{what} {path} is a directory, not a file", directory_hint) from None
    except PermissionError:
        raise ConfigError(f"{what} {path} cannot be read (permission denied)", "run as a user that may read it, or fix its mode") from None


def read_toml(path: Path, what: str, missing_hint: str) -> tuple[dict[str, Any], bytes]:
    """Parse a TOML file; return the document and the exact bytes parsed. Every way the file can
    be unreadable is a ConfigError, never a traceback."""
    raw = read_file_bytes(path, what, missing_hint, f"give the path of the TOML file itself; {missing_hint}")
    try:
        return toml_loads(raw.decode("utf-8")), raw
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{what} {path} is not valid TOML: {exc}", "fix the syntax at the line and column shown") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{what} {path} is not UTF-8 text", "save the file as UTF-8") from None


class Table:
    """Reads one TOML table, remembering which keys were used so leftovers can be reported."""

    def __init__(self, file: Path, prefix: str, data: dict[str, Any], base_dir: Path, check_files: bool) -> None:
        self.file, self.prefix, self.data, self.base_dir, self.check_files = file, prefix, data, base_dir, check_files
        self.used: set[str] = set()
        for key in data:
            if SECRET_NAMES.search(key):
                raise self.error(
                    key, None, "secrets are never accepted inline",
                    f"put the secret in a file readable only by the agent (chmod 600) and name the file instead; remove '{self.name(key)}'",
                )

    def name(self, key: str) -> str:
        return f"{self.prefix}.{key}" if self.prefix else key

    def error(self, key: str, value: Any, allowed: str, hint: str = "", *, redact: bool = False) -> ConfigError:
        redact = redact or bool(SECRET_NAMES.search(key))
        shown = "<redacted>" if redact else repr(value)
        what = f"{self.name(key)} = {shown}" if value is not None else self.name(key)
        return ConfigError(f"{self.file}: {what}: {allowed}", hint or f"fix {self.name(key)} in {self.file}")

    def get(self, key: str, default: Any) -> Any:
        self.used.add(key)
        if key in self.data:
            return self.data[key]
        if default is REQUIRED:
            raise self.error(key, None, "is required", f"add {key} = ... under [{self.prefix}] in {self.file}")
        return default

    # -- the one checking function per kind ----------------------------------------------------
    def read(self, key: str, spec: Spec, default: Any) -> Any:
        if spec.optional and key not in self.data:
            self.used.add(key)
            return None
        if spec.kind == "paths":
            return self._paths(key, spec)
        value = self.get(key, default)
        if spec.kind == "path":
            return None if value is None else self._resolve(key, value, spec.must, spec.private)
        if value is None and default is None and key not in self.data:
            return None
        return getattr(self, f"_{spec.kind}")(key, value, spec)

    def _string(self, key: str, value: Any, spec: Spec) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.error(key, value, "must be a non-empty string")
        return value

    def _identifier(self, key: str, value: Any, spec: Spec) -> Any:
        """A value checked by its one rule in edge_agent.identifiers, reported with this key's path."""
        try:
            return spec.checker()(value)
        except IdentifierError as exc:
            raise self.error(key, value, f"{exc.message}; {exc.hint}") from None

    def _choice(self, key: str, value: Any, spec: Spec) -> str:
        if spec.fold_case:
            if not isinstance(value, str) or value.upper() not in spec.choices:
                raise self.error(key, value, f"must be one of {', '.join(spec.choices)}")
            return value.upper()
        if value not in spec.choices:
            raise self.error(key, value, f"must be one of {', '.join(repr(c) for c in spec.choices)}")
        return str(value)

    def _parsed(self, key: str, value: Any, spec: Spec) -> Any:
        try:
            return spec.checker()(value)
        except ConfigError as exc:
            raise self.error(key, value, spec.allowed, exc.hint) from None

    def _integer(self, key: str, value: Any, spec: Spec) -> int:
        lo, hi = int(spec.lo or 0), int(spec.hi or 0)
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise self.error(key, value, f"must be an integer from {lo} to {hi}")
        return value

    def _number(self, key: str, value: Any, spec: Spec) -> float:
        lo, hi = float(spec.lo or 0.0), float(spec.hi or 0.0)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok:
            ok = (lo < value if spec.lo_open else lo <= value) and value <= hi
        if not ok:
            bound = f"greater than {lo}" if spec.lo_open else f"from {lo}"
            raise self.error(key, value, f"must be a number {bound} to {hi}")
        return float(value)

    def _boolean(self, key: str, value: Any, spec: Spec) -> bool:
        if not isinstance(value, bool):
            raise self.error(key, value, "must be true or false")
        return value

    def _paths(self, key: str, spec: Spec) -> tuple[Path, ...]:
        """A list of paths (default empty), each resolved and checked like a path."""
        values = self.get(key, [])
        if not isinstance(values, list):
            raise self.error(key, values, "must be a list of file paths")
        return tuple(self._resolve(key, value, spec.must, spec.private) for value in values)

    def _resolve(self, key: str, value: Any, must: str, private: bool) -> Path:
        """A path resolved against the config file's directory; checked when check_files is on."""
        if isinstance(value, Path):
            raw = str(value)
        elif isinstance(value, str) and value.strip():
            raw = value
        else:
            raise self.error(key, value, "must be a file path (a non-empty string)")
        if KEY_PATH_NAMES.search(key) and INLINE_KEY.search(raw):
            raise self.error(
                key, value, "looks like key material written inline; keys are named by file path only",
                f"save the key to a file (chmod 600 for private keys) and set {self.name(key)} to its path",
                redact=True,
            )
        path = self.expand_user(key, raw)
        if not path.is_absolute():
            path = self.base_dir / path
        path = Path(*path.parts)  # normalise without resolving symlinks
        if self.check_files and must != "any":
            self._check_path(key, path, must, private)
        return path

    def expand_user(self, key: str, raw: str) -> Path:
        """``~`` / ``~user`` expanded; a user unknown here is a ConfigError (pathlib raises RuntimeError)."""
        try:
            return Path(raw).expanduser()
        except RuntimeError:
            raise self.error(key, raw, "starts with ~ but that home folder cannot be found on this machine",
                             f"write the full path in {self.name(key)}") from None

    def _check_path(self, key: str, path: Path, must: str, private: bool) -> None:
        if must == "file" and not path.is_file():
            if path.is_dir():
                raise self.error(key, str(path), "is a directory, not a file", f"name the file itself in {self.name(key)}")
            raise self.error(key, str(path), "file does not exist", f"create it (provisioning writes it) or correct {self.name(key)}")
        if must == "dir" and not path.is_dir():
            raise self.error(key, str(path), "directory does not exist", f"create it or correct {self.name(key)}")
        if must == "file_or_absent" and path.exists() and not path.is_file():
            raise self.error(key, str(path), "is a directory, not a file", f"remove the directory, or point {self.name(key)} at the file itself")
        if must == "dir_or_absent" and path.exists() and not path.is_dir():
            raise self.error(key, str(path), "is a file, not a directory", f"move the file away, or point {self.name(key)} at a directory")
        if private:
            mode = stat.S_IMODE(path.stat().st_mode)
            if mode & 0o077:
                raise self.error(
                    key, str(path), f"private key file has mode {mode:o}; it must be readable by its owner only (0600)",
                    f"run: chmod 600 {path}",
                )

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            key = unknown[0]
            allowed = ", ".join(sorted(self.used))
            raise self.error(key, None, f"unknown key (allowed in [{self.prefix}]: {allowed})" if self.prefix else
                             f"unknown key (allowed: {allowed})")


def read_section(table: Table, cls: type[T], env: Mapping[str, Any] | None = None, given: Mapping[str, Any] | None = None) -> T:
    """Read every ``setting`` field of ``cls`` from ``table`` (refusing leftover keys) and build it.

    ``given``: fields already read (or not read from the file at all); ``env``: what ``Derived``
    defaults may use besides this section's values (earlier sections, the hardware profile).
    Keys with plain defaults are read first, so a derived default may depend on any of them.
    """
    values: dict[str, Any] = dict(given or {})
    pending = [(key, spec) for key, spec in specs(cls) if key not in values]
    pending.sort(key=lambda item: isinstance(item[1].default, Derived))
    for key, spec in pending:
        default = spec.default
        if isinstance(default, Derived):
            default = default.compute({**(env or {}), **values})
        values[key] = table.read(key, spec, default)
    table.done()
    return cls(**values)


def describe_default(spec: Spec) -> str:
    """The default as a reader would write it in a table (for ``edge-agent config keys``)."""
    if spec.default is REQUIRED:
        return "required"
    if isinstance(spec.default, Derived):
        return spec.default.doc
    if spec.optional or spec.default is None:
        return "unset"
    return repr(spec.default)
