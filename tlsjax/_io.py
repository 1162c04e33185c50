"""Writing results: never over a user's file, never half a file, never a mix of two runs.

- Every file is written under a temporary name in its own folder
  (``.NAME.tlsjax-tmp-PID-RANDOM``, a name no user file has) and renamed into place
  (`atomic_path`, `atomic_write_text`, `atomic_write_bytes`): an interrupted write
  leaves the old file or the new one, never part of one.
- Output locations are checked before any computation (`check_output_path`,
  `OutputDir(expect=...)`): a folder given as a file, a read-only folder, an unknown
  figure format and a user's file in the way are reported at once.
- A file is replaced only if tlsjax wrote it: JSON files carry a ``written_by``
  record (`written_by`), and a later write of the *same* run (same `run_id`, e.g. a
  resumed ensemble) may replace it; anything else needs ``overwrite=True``
  (``--overwrite``).
- An output folder (`OutputDir`) holds `tlsjax-manifest.json`, the list of files
  tlsjax put there. A run writes all its files into a hidden staging folder inside the
  output folder and moves them in at the end, with interrupts held back, the manifest
  last; files of the previous run of the same command that the new run does not
  produce are removed, so the folder holds either the old complete run or the new one.
  A user's other files are never touched.
- A manifest that cannot be read (damaged by hand or by an old version) is reported;
  ``--overwrite`` replaces it, or delete it, or choose another folder.
- In a job of several processes (`jax.distributed`), only process 0 writes
  (`is_writer`): the others write into a private temporary folder that is removed at
  once, so they run the same code and leave nothing behind.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import math
import os
import re
import secrets
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import jax
import numpy as np

from ._interrupts import deferred_interrupts

MANIFEST = "tlsjax-manifest.json"
MANIFEST_FORMAT = "tlsjax-manifest-v2"
#: Marks temporary files (``.NAME.tlsjax-tmp-PID-RANDOM``) and staging folders.
TMP_TAG = ".tlsjax-tmp-"
STAGING_PREFIX = ".tlsjax-staging-"
#: Figure formats accepted for figure paths (those matplotlib writes without extras).
FIGURE_SUFFIXES = (".png", ".pdf", ".svg", ".eps", ".ps", ".jpg", ".jpeg", ".tif", ".tiff",
                   ".webp", ".pgf")
_PROGRAM = "tlsjax"
_STALE = re.compile(r"^\.(?:.+\.tlsjax-tmp-|tlsjax-staging-)(\d+)-[0-9a-f]+")


def _version() -> str:
    from . import __version__

    return __version__


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):
        return _jsonable(np.asarray(obj).tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    return obj


def run_id(config) -> str:
    """A short fingerprint (16 hex digits) of a run's settings (anything JSON-like)."""
    text = json.dumps(_jsonable(config), sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def written_by(run: str | None = None) -> dict:
    """The record that marks a JSON file as tlsjax's (and, with `run`, as that run's)."""
    out = {"program": _PROGRAM, "version": _version()}
    if run is not None:
        out["run_id"] = run
    return out


# ----------------------------------------------------------------- atomic writing


def is_writer() -> bool:
    """False in processes 1, 2, ... of a job of several processes (`jax.distributed`):
    one process, 0, writes files; the others compute the same results and discard them."""
    return not jax.distributed.is_initialized() or jax.process_index() == 0


def temp_path(path) -> Path:
    """A fresh temporary name beside `path`: ``.NAME.tlsjax-tmp-PID-RANDOM`` + `path`'s
    suffix (so writers that look at the suffix, e.g. matplotlib, still work)."""
    path = Path(path)
    return path.with_name(f".{path.name}{TMP_TAG}{os.getpid()}-{secrets.token_hex(4)}"
                          f"{path.suffix}")


def _fsync(path: Path) -> None:
    with contextlib.suppress(OSError), open(path, "rb+") as f:
        os.fsync(f.fileno())


@contextlib.contextmanager
def atomic_path(path) -> Iterator[Path]:
    """Context manager yielding a temporary path to write; on success it is renamed to
    `path` (missing parent folders are created), on any exception it is removed.

    Example: ``with atomic_path("fig.png") as tmp: fig.savefig(tmp)``.
    """
    path = Path(path)
    if not is_writer():  # another process writes `path`; this one's copy is discarded
        with tempfile.TemporaryDirectory(prefix="tlsjax-") as private:
            yield Path(private) / path.name
        return
    kind = file_kind(path)
    if kind == "device":  # e.g. /dev/stdout: written in place, never renamed over
        with tempfile.TemporaryDirectory(prefix=TMP_TAG.strip(".-") + "-") as folder:
            tmp = Path(folder) / f"out{path.suffix}"
            yield tmp
            try:
                with open(path, "wb") as f:
                    f.write(tmp.read_bytes())
            except OSError as err:
                raise OSError(err.errno, f"cannot write {path}: {err.strerror}") from None
        return
    if kind == "special":
        raise ValueError(_not_regular(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        yield tmp
        _fsync(tmp)
        with deferred_interrupts():
            if file_kind(path) not in ("missing", "file"):  # appeared meanwhile
                raise ValueError(_not_regular(path))
            os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def file_kind(path) -> str:
    """What `path` is: "missing", "file" (a regular file, or a link to one), "folder",
    "device" (a character device or a pipe, such as /dev/stdout or /dev/null: written in
    place) or "special" (anything else: a block device, a socket, a dangling link)."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return "special" if path.is_symlink() else "missing"
    except OSError:
        return "special"
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "folder"
    return "device" if stat.S_ISCHR(mode) or stat.S_ISFIFO(mode) else "special"


def _not_regular(path) -> str:
    return (f"{path} exists and is not a regular file (a block device, socket or dangling "
            "link); tlsjax writes results only to regular files, character devices and pipes: "
            "choose another output path")


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write `data` to `path` through a temporary file and a rename."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path, text: str) -> Path:
    """Write `text` (UTF-8) to `path` through a temporary file and a rename."""
    return atomic_write_bytes(path, text.encode("utf-8"))


# ----------------------------------------------------------------- checks before computing


def _nearest_existing(path: Path) -> Path:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_folder_writable(folder, what: str = "output folder") -> None:
    """Raise if files cannot be created in `folder` (or, if it does not exist yet, in the
    nearest existing folder above it, where it would be created).

    The check creates and removes a temporary file, so it also holds for root and for
    read-only file systems.
    """
    folder = Path(folder)
    for p in (folder, *folder.parents):  # up to the first place that exists
        if p.exists():
            break
        if p.is_symlink():
            raise FileExistsError(f"{what} {folder}: {p} is a link to nothing; give a folder")
    base = _nearest_existing(folder)
    if not base.is_dir():
        raise FileExistsError(f"{what} {folder}: {base} exists and is not a folder")
    probe = temp_path(base / "probe")
    try:
        fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        os.close(fd)
        probe.unlink()
    except OSError as err:
        where = "" if base == folder else f" (it would be created in {base})"
        raise PermissionError(f"{what} {folder}{where} is not writable: "
                              f"{err.strerror or err}") from None


def read_tlsjax_json(path) -> dict | None:
    """The ``written_by`` record of a tlsjax JSON file, or None if `path` is not one."""
    try:
        with open(path, "rb") as f:
            head = f.read(64 << 20)
        data = json.loads(head.decode("utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    rec = data.get("written_by") if isinstance(data, dict) else None
    if isinstance(rec, dict) and rec.get("program") == _PROGRAM:
        return rec
    return None


def check_writable(path, overwrite: bool, owned: set[str] | None = None, *,
                   run: str | None = None) -> None:
    """Raise `FileExistsError` if `path` exists and may not be replaced.

    A path that is not a regular file (a device, pipe, socket) raises `ValueError` even
    with `overwrite`. It may be replaced if `overwrite`, if its name is in `owned` (listed in a manifest),
    or if it is a tlsjax JSON file written by the same run (`run`, see `run_id`).
    """
    path = Path(path)
    if file_kind(path) in ("special", "device"):  # never renamed over, even with overwrite
        raise ValueError(_not_regular(path))
    if overwrite or not (path.exists() or path.is_symlink()):
        return
    if owned is not None and path.name in owned:
        return
    rec = read_tlsjax_json(path) if path.suffix.lower() == ".json" else None
    if rec is not None and run is not None and rec.get("run_id") == run:
        return
    if rec is not None:
        raise FileExistsError(
            f"{path} exists and holds the result of another tlsjax run (other settings); "
            "pass --overwrite (overwrite=True) or choose another output path")
    raise FileExistsError(
        f"{path} exists and was not written by tlsjax; pass --overwrite "
        "(overwrite=True) or choose another output path")


def check_output_path(path, overwrite: bool = False, *, run: str | None = None,
                      suffixes: Iterable[str] | None = None, what: str = "output file") -> Path:
    """Check, before computing, that a result can be written to the file `path`.

    **Arguments:**

    - `path`: the file to be written.
    - `overwrite`: allow replacing an existing file that tlsjax did not write.
    - `run`: the writer's `run_id`; a tlsjax JSON of the same run may be replaced.
    - `suffixes`: allowed suffixes (e.g. `FIGURE_SUFFIXES`), case-insensitive.
    - `what`: how the path is named in messages (e.g. ``"--json"``).

    **Returns:** `path` as a `Path`.

    **Raises:** `ValueError` (a folder, a wrong suffix), `FileExistsError` (a file that
    may not be replaced), `PermissionError` (the folder is not writable). Missing parent
    folders are fine: the writers create them.
    """
    if str(path).strip() == "":
        raise ValueError(f"{what}: empty path; give a file name")
    path = Path(path)
    kind = file_kind(path)
    if str(path) == "." or kind == "folder":
        raise ValueError(f"{what} {path} is a folder; give a file name")
    if kind == "special":
        raise ValueError(f"{what} {_not_regular(path)}")
    if kind == "device":  # written in place (e.g. /dev/stdout), nothing renamed over it
        return path
    if suffixes is not None:
        allowed = tuple(s.lower() for s in suffixes)
        if path.suffix.lower() not in allowed:
            raise ValueError(f"{what} {path}: unsupported file type {path.suffix or '(none)'!r};"
                             f" allowed: {', '.join(allowed)}")
    check_writable(path, overwrite, run=run)
    check_folder_writable(path.parent, what=f"{what} {path}: folder")
    return path


def write_json(path, data, *, overwrite: bool = False, run: str | None = None,
               indent: int | None = 2) -> Path:
    """Write `data` as JSON, atomically (NumPy/JAX arrays allowed; non-finite floats
    become null/"inf"). A dict gets the ``written_by`` record (`written_by(run)`).
    `indent` None writes compactly (large arrays).

    Refuses (`FileExistsError`) to replace a file tlsjax did not write, or a tlsjax JSON
    of another run, unless `overwrite`.
    """
    if not is_writer():  # process 0 writes (and may have done so already: no check here)
        return Path(path)
    path = check_output_path(path, overwrite, run=run)
    if isinstance(data, dict):
        data = {**data, "written_by": written_by(run)}
    atomic_write_text(path, json.dumps(_jsonable(data), indent=indent) + "\n")
    return path


def _csv_text(header: list[str], rows) -> str:
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(header)
    for row in rows:
        w.writerow([f"{v:.8g}" if isinstance(v, float) else v for v in row])
    return buf.getvalue()


# ----------------------------------------------------------------- output folders


def _plain_name(name) -> bool:
    return (isinstance(name, str) and name not in ("", ".", "..") and "/" not in name
            and "\\" not in name and not name.startswith("."))


def _read_manifest(root: Path, overwrite: bool) -> dict:
    """{"files", "groups", "pending", "complete"} of `root`'s manifest (empty if none)."""
    empty = dict(files=[], groups={}, pending=[], complete=True)
    p = root / MANIFEST
    if not (p.exists() or p.is_symlink()):
        return empty
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
        files = d["files"]
        groups = d.get("groups", {"": files})
        pending = d.get("pending", [])
        ok = (isinstance(files, list) and isinstance(groups, dict) and isinstance(pending, list)
              and all(isinstance(v, list) for v in groups.values()))
        if not ok:
            raise ValueError("unexpected structure")
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError) as err:
        if overwrite:
            return empty
        raise FileExistsError(
            f"{p} cannot be read ({type(err).__name__}: {err}), so tlsjax cannot tell which "
            f"files in {root} it wrote. Pass --overwrite (overwrite=True) to replace the "
            "manifest and the files of this run (other files are left alone), delete the "
            "manifest, or choose another output folder") from None
    keep = _plain_name
    return dict(files=[f for f in files if keep(f)],
                groups={str(g): [f for f in v if keep(f)] for g, v in groups.items()},
                pending=[f for f in pending if keep(f)], complete=bool(d.get("complete", True)))


def _remove_stale_temporaries(root: Path) -> None:
    """Remove temporary files and staging folders left by tlsjax processes that died."""
    if not root.is_dir():
        return
    for entry in root.iterdir():
        m = _STALE.match(entry.name)
        if m is None or int(m.group(1)) == os.getpid():
            continue
        try:
            os.kill(int(m.group(1)), 0)
            continue  # that process still runs
        except ProcessLookupError:
            pass
        except OSError:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                entry.unlink()


class OutputDir:
    """A folder of results of one run, written all at once (see the module docstring).

    **Arguments:**

    - `root`: the folder (created when the first file is written, with its parents).
    - `overwrite`: allow replacing files that tlsjax did not write.
    - `expect`: the file names the run will write, checked now (before computing).
    - `group`: the command writing (e.g. ``"reproduce"``); on commit, files of that
      group's previous run that this run does not produce are removed.

    Use as a context manager: ``with OutputDir(...) as out: plot(out.path("a.png"))``.
    `path(name)` returns where to write `name` now (in the staging folder); on normal
    exit the files are moved into `root` and the manifest written (`commit`); on an
    exception (Ctrl-C included) the staging folder is removed and `root` is left as it
    was (`discard`).
    """

    def __init__(self, root, *, overwrite: bool = False, expect: Iterable[str] = (),
                 group: str = ""):
        self.root = Path(root)
        self.overwrite = overwrite
        self.group = str(group)
        if self.root.exists() and not self.root.is_dir():
            raise FileExistsError(f"{self.root} exists and is not a folder")
        check_folder_writable(self.root)
        self._manifest = _read_manifest(self.root, overwrite)
        if not self._manifest["complete"]:
            print(f"note: the previous run into {self.root} was stopped while its files were "
                  "being moved in; they are replaced now", file=sys.stderr)
        self.owned: set[str] = set(self._manifest["files"]) | set(self._manifest["pending"])
        self.written: list[str] = []
        self._staging: Path | None = None
        self._created: list[Path] = []
        self.committed = False
        self._writer = is_writer()
        if self._writer:  # (pids of other hosts mean nothing here)
            _remove_stale_temporaries(self.root)
        for name in expect:
            self._check_name(name)

    def _check_name(self, name: str) -> Path:
        if not _plain_name(name) or name == MANIFEST:
            raise ValueError(f"`OutputDir`: {name!r} is not a plain file name")
        final = self.root / name
        if final.is_dir():
            raise FileExistsError(f"{final} is a folder; tlsjax needs to write a file there")
        check_writable(final, self.overwrite, self.owned)
        return final

    def _ensure_staging(self) -> Path:
        if self._staging is None and not self._writer:  # discarded on exit (`commit`)
            self._staging = Path(tempfile.mkdtemp(prefix="tlsjax-staging-"))
        if self._staging is None:
            missing, p = [], self.root
            while not p.exists():
                missing.append(p)
                p = p.parent
            self.root.mkdir(parents=True, exist_ok=True)
            self._created = missing
            self._staging = self.root / f"{STAGING_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
            self._staging.mkdir()
        return self._staging

    def path(self, name: str) -> Path:
        """Where to write the file `name` of this run (moved into `root` on commit)."""
        if self._writer:  # (process 0 of several may already have moved its files in)
            self._check_name(name)
        elif not _plain_name(name) or name == MANIFEST:
            raise ValueError(f"`OutputDir`: {name!r} is not a plain file name")
        staging = self._ensure_staging()
        if name not in self.written:
            self.written.append(name)
        return staging / name

    def json(self, name: str, data) -> Path:
        if isinstance(data, dict):
            data = {**data, "written_by": written_by()}
        p = self.path(name)
        p.write_text(json.dumps(_jsonable(data), indent=2) + "\n", encoding="utf-8")
        return p

    def csv(self, name: str, header: list[str], rows) -> Path:
        p = self.path(name)
        p.write_text(_csv_text(header, rows), encoding="utf-8", newline="")
        return p

    def text(self, name: str, text: str) -> Path:
        p = self.path(name)
        p.write_text(text, encoding="utf-8")
        return p

    def _write_manifest(self, files, groups, pending=(), complete=True) -> None:
        atomic_write_text(self.root / MANIFEST, json.dumps(dict(
            format=MANIFEST_FORMAT, written_by=written_by(), complete=complete,
            files=sorted(files), groups={g: sorted(v) for g, v in sorted(groups.items())},
            pending=sorted(pending)), indent=2) + "\n")

    def commit(self) -> None:
        """Move the staged files into `root` (interrupts held back), manifest last."""
        if self.committed or self._staging is None or not self._writer:
            self.discard()
            self.committed = True
            return
        root, new = self.root, list(self.written)
        with deferred_interrupts():
            old = {f for f in self._manifest["files"] if (root / f).is_file()}
            if old or (root / MANIFEST).exists():
                self._write_manifest(old, self._manifest["groups"], pending=new, complete=False)
            for name in new:
                os.replace(self._staging / name, root / name)
            stale = set(self._manifest["groups"].get(self.group, [])) - set(new)
            for name in stale:
                if (root / name).is_file() and not (root / name).is_symlink():
                    (root / name).unlink()
            groups = {g: [f for f in v if f not in new and (root / f).is_file()]
                      for g, v in self._manifest["groups"].items()}
            groups[self.group] = new
            groups = {g: v for g, v in groups.items() if v}
            self._write_manifest({f for v in groups.values() for f in v}, groups)
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = None
            self.committed = True

    def discard(self) -> None:
        """Remove the staged files (and folders this run created, if left empty)."""
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = None
        for folder in self._created:
            with contextlib.suppress(OSError):
                folder.rmdir()
        self._created = []

    def __enter__(self) -> OutputDir:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        elif not self.committed:
            self.discard()
