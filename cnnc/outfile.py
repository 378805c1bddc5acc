"""Writing output files all or nothing (`cnnc build`, `cnnc render`).

`prepare_output` rejects a directory and creates the parent; `atomic_output` hands out a new
temporary file beside the target and renames it over the target only if the writer succeeded,
so an interrupted or failed command never leaves a half-written file. Errors are CnncErrors.
"""
from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from .diagnostics import CnncError


def prepare_output(out: str | os.PathLike, example: str) -> Path:
    """Check that `out` can be a file and create its directory; `example` names a file for the hint."""
    path = Path(out)
    if path.is_dir() or str(out).endswith(os.sep):
        raise CnncError(f"output '{out}' is a directory; give a file name such as {path / example}")
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


def _new_temp(path: Path) -> Path:
    """A new empty file next to `path`, with the usual permissions (the umask applies)."""
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            return tmp
        except FileExistsError:
            continue
        except OSError as e:
            raise CnncError(f"cannot write '{path}': {e.strerror or e}") from None
    raise CnncError(f"cannot write '{path}': no temporary file could be created beside it")


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike):
    """Yield a temporary path to write; on success it replaces `path`, on failure it is removed."""
    path = Path(path)
    tmp = _new_temp(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as e:
        raise CnncError(f"cannot write '{path}': {e.strerror or e}") from None
    finally:
        if tmp.exists():
            tmp.unlink()


def write_atomically(path: str | os.PathLike, data: bytes) -> None:
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
