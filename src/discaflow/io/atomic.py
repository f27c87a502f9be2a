"""Atomic file creation: write to a temporary name in the same directory, then rename.

A crash or kill therefore never leaves a half-written file under the final name, and a rerun
(or Snakemake) never mistakes a partial output for a complete one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    The temporary name keeps the suffix of ``path`` (libraries such as mrcfile and h5py look at it).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".partial" + path.suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    tmp_path.unlink()  # writers create it themselves; some refuse to overwrite
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary directory ``.<name>.partial`` beside ``path``; when the block succeeds
    it replaces ``path`` (an existing one is removed first). A leftover ``.*.partial`` after a kill
    is removed by the next call for the same path."""
    import shutil

    path = Path(path)
    tmp = path.with_name(f".{path.name}.partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def check_writable_dir(path: str | os.PathLike, name: str) -> None:
    """Raise InputError (naming ``name``, e.g. an option) unless ``path`` is, or can be created as, a
    writable directory: checked before long work starts, so that it does not fail at the end."""
    from discaflow.errors import InputError

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"{name} {path}: exists and is not a directory; give a directory")
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise InputError(f"{name} {path}: {probe} is a file, so the directory cannot be created; give another path")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise InputError(f"{name} {path}: {probe} is not writable; give a writable directory")


def check_output_file(path: str | os.PathLike, name: str) -> None:
    """Raise InputError (naming ``name``) unless ``path`` can be written as a file: not a directory,
    and in a directory that exists or can be created and is writable. Checked before the work."""
    from discaflow.errors import InputError

    path = Path(path)
    if path.is_dir():
        raise InputError(f"{name} {path}: is a directory; give a file name")
    check_writable_dir(path.parent, name)


@contextlib.contextmanager
def exclusive_lock(directory: str | os.PathLike, name: str) -> Iterator[Path]:
    """Hold an exclusive lock on ``directory`` (created if needed) while the block runs, so that two
    runs never write one output or state directory; a second run is an InputError naming the holder.

    The lock is ``fcntl.flock`` on ``<directory>/.discaflow.lock``: the kernel releases it when the
    process dies (kill -9 included), so a stale lock file never blocks a rerun."""
    import fcntl
    import socket

    from discaflow.errors import InputError

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    fh = open(directory / ".discaflow.lock", "a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.seek(0)
        holder = fh.read().strip() or "another process"
        fh.close()
        raise InputError(f"{name} {directory}: in use by {holder}; wait for that run to end, or give another directory") from None
    try:
        fh.seek(0)
        fh.truncate()
        fh.write(f"discaflow PID {os.getpid()} on {socket.gethostname()}\n")
        fh.flush()
        yield directory
    finally:
        fh.close()
