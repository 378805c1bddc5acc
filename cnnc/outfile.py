"""Writing output files all or nothing (`cnnc build`, `cnnc render`).

`prepare_output` checks that a path may be written and creates its directory: an existing path
must be a regular file (never a directory, device, FIFO or socket) and must not be a symbolic
link (cnnc does not write through links: name the file itself), and it must not be one of the
command's inputs (the spec, its imports, the weights). `atomic_output` hands out a new temporary
file beside the target and renames it over the target only if the writer succeeded, so an
interrupted or failed command never leaves a half-written file.

Temporary files are hidden and named `.<target>.cnnc-<pid>-<random>.tmp`. Every exit path
removes them: success (renamed), errors and signals (the `finally` here, and the command
line's handler, which turns SIGTERM into an exception and calls `remove_own_temporaries`).
Only SIGKILL can leave one behind; the next write into that directory removes the ones whose
process is gone. Errors are CnncErrors.
"""
from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat
from pathlib import Path

from .diagnostics import CnncError

_TEMP = re.compile(r"^\..*\.cnnc-(\d+)-[0-9a-f]{8}\.tmp$")
_LIVE: set = set()  # temporary files this process created and has not yet renamed or removed


def _kind(mode: int) -> str | None:
    """What a non-regular file is, in words (None for a regular file)."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def prepare_output(out: str | os.PathLike, example: str, inputs=()) -> Path:
    """Check that `out` can be written and create its directory; `example` names a file for the
    hint; `inputs` are the command's input files, which `out` must not be."""
    path = Path(out)
    if str(out).endswith(os.sep):
        raise CnncError(f"output '{out}' is a directory; give a file name such as {path / example}")
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):  # a missing directory is reported below
        st = None
    except OSError as e:
        raise CnncError(f"cannot write '{out}': {e.strerror or e}") from None
    if st is not None:
        kind = _kind(st.st_mode)
        if kind == "a directory":
            raise CnncError(f"output '{out}' is a directory; give a file name such as {path / example}")
        if kind == "a symbolic link":
            raise CnncError(f"output '{out}' is a symbolic link; cnnc does not write through links: give the "
                            f"path of the file itself ({os.path.realpath(path)})")
        if kind is not None:
            raise CnncError(f"output '{out}' is {kind}; cnnc writes only regular files")
        for name in inputs:
            with contextlib.suppress(OSError):
                other = os.stat(name)
                if (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino):
                    raise CnncError(f"output '{out}' is an input of this command ('{name}'); "
                                    "refusing to overwrite it")
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise CnncError(f"cannot create the output directory '{parent}': a file of that name exists") from None
    except OSError as e:
        raise CnncError(f"cannot create the output directory '{parent}': {e.strerror or e}") from None
    if not parent.is_dir():
        raise CnncError(f"cannot create the output directory '{parent}': a file of that name exists")
    return path


def remove_stale_temporaries(directory: Path) -> list[Path]:
    """Remove cnnc's temporary files in `directory` whose process no longer runs (left by a
    SIGKILL); only regular files of this user. Returns what was removed."""
    removed = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    for entry in entries:
        m = _TEMP.match(entry.name)
        if not m or int(m.group(1)) == os.getpid():
            continue
        try:
            st = entry.stat(follow_symlinks=False)
            mine = st.st_uid == getattr(os, "geteuid", lambda: st.st_uid)()
            if not stat.S_ISREG(st.st_mode) or not mine or _running(int(m.group(1))):
                continue
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            continue
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _new_temp(path: Path) -> Path:
    """A new empty hidden file next to `path`, with the usual permissions (the umask applies)."""
    remove_stale_temporaries(path.parent)
    for _ in range(100):
        tmp = path.parent / f".{path.name[:40]}.cnnc-{os.getpid()}-{secrets.token_hex(4)}.tmp"
        _LIVE.add(tmp)  # before it exists: a signal between creating and returning it cannot lose it
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            return tmp
        except FileExistsError:
            _LIVE.discard(tmp)
            continue
        except OSError as e:
            _LIVE.discard(tmp)
            raise CnncError(f"cannot write '{path}': {e.strerror or e}") from None
    raise CnncError(f"cannot write '{path}': no temporary file could be created beside it")


def _remove(tmp: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    _LIVE.discard(tmp)


def remove_own_temporaries() -> None:
    """Remove every temporary file this process still holds (the command line calls it on
    every exit; normally there is none left)."""
    for tmp in list(_LIVE):
        with contextlib.suppress(OSError):
            _remove(tmp)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike):
    """Yield a temporary path to write; on success it replaces `path`, on failure (or any
    interruption) it is removed."""
    path = Path(path)
    tmp = _new_temp(path)
    try:
        yield tmp
        os.replace(tmp, path)
        _LIVE.discard(tmp)
    except OSError as e:
        raise CnncError(f"cannot write '{path}': {e.strerror or e}") from None
    finally:
        if tmp in _LIVE:
            _remove(tmp)


def write_atomically(path: str | os.PathLike, data: bytes) -> None:
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
