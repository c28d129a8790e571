"""Write output files whole or not at all.

Everything spad writes goes through :func:`replacing`: the data go to a hidden temporary file
next to the target (same folder, so the final rename is atomic on every file system), and the
temporary file is renamed over the target only once it is complete. An error, Ctrl-C or SIGTERM
in between removes the temporary file and leaves an existing target untouched: nothing is ever
half-written. Errors name the target, never the temporary file, in the user's words::

    >>> with replacing("out.h5") as (tmp,):
    ...     write_everything(tmp)          # out.h5 appears only if this returns

    FileNotFoundError: [Errno 2] no such folder: /no/such/dir: '/no/such/dir/out.h5'

The application layer (:mod:`spad.app.safe_output`) adds signal handling and the exit codes.
"""

from __future__ import annotations

import contextlib
import errno as errno_mod
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

__all__ = ["replacing", "check_writable", "check_folder", "check_regular_file", "user_os_error",
           "free_bytes", "check_free", "DISK_RESERVE_BYTES"]

DISK_RESERVE_BYTES = 32 << 20
"""Free space every writer leaves on the disk: a write that would go below it is refused with
ENOSPC before the file system is full. HDF5 meeting a full disk in the middle of a write
leaves its caches inconsistent (errors at every later call, a crash when the file is closed);
refused while there is still room, the writer closes the file cleanly, and everything written
before stays readable."""


def free_bytes(path: str | os.PathLike[str]) -> int:
    """Free space for an unprivileged writer on the disk holding ``path`` (a file or folder;
    a file not created yet counts its folder)."""
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    return shutil.disk_usage(p).free


def check_free(path: str | os.PathLike[str], need: float, what: str = "this") -> None:
    """Fail, naming ``path``, unless ``need`` bytes plus :data:`DISK_RESERVE_BYTES` are free
    on its disk."""
    free = free_bytes(path)
    if free < need + DISK_RESERVE_BYTES:
        raise OSError(errno_mod.ENOSPC,
                      f"not enough space on the disk: {_mb(free)} free, {what} needs "
                      f"{_mb(need)} beyond the {_mb(DISK_RESERVE_BYTES)} spad leaves free",
                      str(path))


def _mb(n: float) -> str:
    return f"{n / 1e6:.1f} MB" if n < 1e9 else f"{n / 1e9:.1f} GB"


def check_regular_file(path: str | os.PathLike[str]) -> Path:
    """Fail, naming ``path``, unless it is an existing regular file: a FIFO or a device would
    block a reader forever or feed it endless bytes.

    Raises
    ------
    FileNotFoundError, IsADirectoryError, OSError
        With ``filename`` the path and a message in the user's terms.
    """
    import stat

    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise FileNotFoundError(errno_mod.ENOENT, "no such file", str(path)) from None
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno_mod.EISDIR, "is a folder, not a file", str(path))
    if not stat.S_ISREG(mode):
        kind = ("a named pipe (FIFO)" if stat.S_ISFIFO(mode) else "a device"
                if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket"
                if stat.S_ISSOCK(mode) else "not a regular file")
        raise OSError(errno_mod.EINVAL, f"is {kind}, not a recording file", str(path))
    return path


def check_writable(target: str | os.PathLike[str], overwrite: bool = True) -> Path:
    """Fail early, naming ``target``, if it cannot be written (before any work is done).

    Raises
    ------
    FileNotFoundError, NotADirectoryError, PermissionError, IsADirectoryError, FileExistsError
        With ``filename`` the target and a message in the user's terms.
    """
    target = Path(target)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.exists():
        raise FileNotFoundError(errno_mod.ENOENT, f"no such folder: {folder}", str(target))
    if not folder.is_dir():
        raise NotADirectoryError(errno_mod.ENOTDIR, f"{folder} is not a folder", str(target))
    if target.is_dir():
        raise IsADirectoryError(errno_mod.EISDIR, "is a folder, not a file", str(target))
    if target.exists() and not overwrite:
        raise FileExistsError(errno_mod.EEXIST,
                              "file exists (choose another name, or overwrite: --force)",
                              str(target))
    _check_not_read_only(folder, target)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(errno_mod.EACCES, f"no permission to write in {folder}",
                              str(target))
    return target


def _check_not_read_only(folder: Path, target: Path) -> None:
    """A read-only file system (a write-protected card, a read-only mount) said as such: it
    is not a matter of permissions."""
    try:
        read_only = bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        return
    if read_only:
        raise OSError(errno_mod.EROFS, f"{folder} is on a read-only file system", str(target))


def check_folder(folder: str | os.PathLike[str]) -> Path:
    """Fail early, naming ``folder``, if it cannot be created or written into."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(errno_mod.ENOTDIR, "exists and is not a folder", str(folder))
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise NotADirectoryError(errno_mod.ENOTDIR, f"{existing} is not a folder", str(folder))
    _check_not_read_only(existing, folder)
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(errno_mod.EACCES, f"no permission to write in {existing}",
                              str(folder))
    return folder


def temporary_name(target: Path) -> Path:
    """A fresh hidden name next to ``target`` (``.STEM.XXXXXXXX.part.EXT``: the extension is
    kept, for writers that choose the format by it)."""
    return target.with_name(f".{target.stem}.{secrets.token_hex(4)}.part{target.suffix}")


def user_os_error(exc: OSError, names: dict[str, str]) -> OSError:
    """``exc`` restated for the user: the target's name instead of a temporary one, the errno's
    plain meaning instead of a library's internals (h5py puts them in the message)."""
    code = exc.errno
    if code is None:  # h5py: "Unable to ... (unable to open file: name = '...', errno = 28, ..."
        m = re.search(r"errno = (\d+)", str(exc))
        code = int(m.group(1)) if m else None
    filename = str(exc.filename) if exc.filename is not None else None
    for tmp, target in names.items():
        if filename == tmp or (filename is None and tmp in str(exc)):
            filename = target
    if filename is None and len(names) == 1:
        filename = next(iter(names.values()))
    internals = bool(re.search(r"errno = \d+|\.part\b", str(exc.strerror)))  # h5py's text
    if exc.errno is not None and exc.strerror and not internals:
        text = exc.strerror  # already plain words
    else:
        text = os.strerror(code) if code else "cannot be written"
    if code == errno_mod.ENOSPC and (internals or not exc.strerror):
        text = "no space left on the disk"
    return OSError(code or errno_mod.EIO, text, filename)


@contextlib.contextmanager
def replacing(*targets: str | os.PathLike[str], overwrite: bool = True) -> Iterator[list[Path]]:
    """Temporary paths for ``targets``, renamed over them when the block ends without error.

    Parameters
    ----------
    targets
        The files to produce (all or none of them appear).
    overwrite
        Replace existing targets (default); ``False`` refuses with :class:`FileExistsError`
        before anything is written.

    Notes
    -----
    Any exception (including KeyboardInterrupt) removes the temporary files; an
    :class:`OSError` is re-raised by :func:`user_os_error` so it names the target.
    """
    paths = [check_writable(t, overwrite) for t in targets]
    tmps = [temporary_name(p) for p in paths]
    names = {str(t): str(p) for t, p in zip(tmps, paths, strict=True)}
    try:
        yield tmps
        for tmp, path in zip(tmps, paths, strict=True):
            os.replace(tmp, path)
    except OSError as exc:
        _remove(tmps)
        raise user_os_error(exc, names) from None
    except BaseException:
        _remove(tmps)
        raise


def _remove(paths: list[Path]) -> None:
    for p in paths:
        with contextlib.suppress(OSError):
            p.unlink(missing_ok=True)
