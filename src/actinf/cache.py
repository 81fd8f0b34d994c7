"""A persistent cache of compiled programs, so that a second run starts at once.

JAX compiles each program shape once per process; on this project's 2-core
machine a maze episode takes about 2 s to compile and 1 ms to run. JAX can
keep compiled programs on disk (its persistent compilation cache): a later
process with the same program loads it instead of compiling.
:func:`enable_compilation_cache` switches it on for the current process.

The command line (``actinf run``, ``actinf fit``, ``actinf recover``) switches
it on by default, in ``$ACTINF_CACHE_DIR`` or ``~/.cache/actinf/jax``; set
``ACTINF_NO_CACHE=1`` to switch it off. ``import actinf`` alone never writes to
disk. The cache is keyed by the program, the JAX version and the device, so a
stale entry is never used; deleting the folder is always safe.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_disabled", "default_cache_dir", "enable_compilation_cache"]


def default_cache_dir() -> Path:
    """``$ACTINF_CACHE_DIR``, else ``$XDG_CACHE_HOME/actinf/jax``, else ``~/.cache/actinf/jax``."""
    if os.environ.get("ACTINF_CACHE_DIR"):
        return Path(os.environ["ACTINF_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "actinf" / "jax"


def cache_disabled() -> bool:
    """True when ``ACTINF_NO_CACHE`` is set to anything but ``0``/empty."""
    return os.environ.get("ACTINF_NO_CACHE", "") not in ("", "0")


def enable_compilation_cache(
    directory: str | os.PathLike | None = None, min_compile_seconds: float = 0.2
) -> Path:
    """Keep compiled programs in ``directory`` (default :func:`default_cache_dir`).

    Args:
      directory: where to keep them (created if missing).
      min_compile_seconds: programs that compile faster than this are not kept
        (JAX's default is 1 s; actinf's small programs compile in a fraction of that).

    Returns:
      the folder used.
    """
    import jax

    path = Path(directory).expanduser() if directory is not None else default_cache_dir()
    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_seconds))
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path
