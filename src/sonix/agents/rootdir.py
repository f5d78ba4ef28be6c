"""Writing into a machine's root file system as root, safely (standard library only).

Provisioning writes into a tree where unprivileged users own directories (their homes, /tmp,
/var/tmp) and may plant symbolic links and hard links. Every path is therefore walked from a
descriptor of the root, one component at a time, with O_NOFOLLOW: the effect of
openat2(RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS). A link in any component is refused, never
followed; owner and mode are changed through descriptors (fchown/fchmod), never by name. On
the way to a path that root will own, a directory owned by someone else is refused, as
systemd-tmpfiles refuses an "unsafe path transition": that user could swap what is below it.

Every change goes through a Transaction, which keeps what it needs to undo it: a replaced
file or link is moved aside (renamed within its directory) rather than overwritten, a created
directory is removed again, an old owner and mode are restored. `rollback` puts the tree back
as it was; `commit` drops the moved-aside copies. So a configuration that fails half-way
(a full disk, a conflict seen late) leaves the root exactly as it found it.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath

from . import common

O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
UNDO_PREFIX = ".sonix-undo-"  # moved-aside entries, removed by commit


class UnsafePath(Exception):
    """A path that cannot be written safely; the message names the component and why."""


@dataclass(frozen=True)
class Entry:
    """What is at a path now (lstat: a link is a link)."""

    kind: str  # file | directory | link | other
    uid: int
    gid: int
    mode: int  # permission bits, with setuid/setgid/sticky
    nlink: int
    size: int

    @staticmethod
    def of(st: os.stat_result) -> Entry:
        if stat.S_ISLNK(st.st_mode):
            kind = "link"
        elif stat.S_ISDIR(st.st_mode):
            kind = "directory"
        elif stat.S_ISREG(st.st_mode):
            kind = "file"
        else:
            kind = "other"
        return Entry(kind, st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), st.st_nlink,
                     st.st_size)


def components(path: str) -> list[str]:
    """The names of an absolute, simplified path; ValueError for anything else."""
    pure = PurePosixPath(path)
    parts = pure.parts
    if not pure.is_absolute() or str(pure) != path or len(parts) < 2 or any(
            p in (".", "..") for p in parts):
        raise ValueError(f"not an absolute, simplified path below /: {path!r}")
    return list(parts[1:])


class Transaction:
    """Changes to one root, all or nothing. Use as a context manager: leaving it with an
    exception rolls back, leaving it normally commits."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root_fd = os.open(root, O_DIR)
        self._undo: list[Callable[[], None]] = []
        self._moved_aside: list[tuple[int, str]] = []  # (dir fd, name) to remove on commit
        self._fds: list[int] = []  # descriptors the undo steps need; closed at the end
        self.before_change: Callable[[str], None] = lambda what: None  # fault injection

    def __enter__(self) -> Transaction:
        return self

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        if kind is None:
            self.commit()
        else:
            self.rollback()

    # ---- walking ---------------------------------------------------------------------------

    def _keep(self, fd: int) -> int:
        self._fds.append(fd)
        return fd

    def parent(self, path: str, owner: int | None, create: bool = False
               ) -> tuple[int, str] | None:
        """The directory that holds `path`, open, and the last name. Components are opened
        with O_NOFOLLOW: a link is refused. `owner` is the uid the entry at `path` will have
        (None: nothing is written there): a directory on the way that belongs to another user
        but root is refused. Missing directories are made (root's, 0755) when `create`; else
        None is returned."""
        names = components(path)
        fd = os.dup(self.root_fd)
        walked = ""
        try:
            for name in names[:-1]:
                walked += "/" + name
                try:
                    child = os.open(name, O_DIR, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        os.close(fd)
                        return None
                    self.mkdir(fd, name, walked, 0o755, 0, 0)
                    child = os.open(name, O_DIR, dir_fd=fd)
                except (NotADirectoryError, OSError) as error:
                    raise self._refusal(fd, name, walked, error) from None
                os.close(fd)
                fd = child
                st = os.fstat(fd)
                if owner is not None and st.st_uid not in (0, owner):
                    raise UnsafePath(
                        f"{walked} belongs to uid {st.st_uid}, who could replace what is "
                        f"below it: refusing to write {path} (for uid {owner}) through it "
                        "(an unsafe path transition)")
        except BaseException:
            os.close(fd)
            raise
        return self._keep(fd), names[-1]

    def _refusal(self, dir_fd: int, name: str, walked: str, error: OSError) -> UnsafePath:
        try:
            st = os.lstat(name, dir_fd=dir_fd)
        except OSError:
            return UnsafePath(f"{walked}: {common.reason(error)}")
        if stat.S_ISLNK(st.st_mode):
            return UnsafePath(f"{walked} is a symbolic link (to {os.readlink(name, dir_fd=dir_fd)}"
                              f", owned by uid {st.st_uid}): provisioning never follows links; "
                              "remove it or make it a directory")
        return UnsafePath(f"{walked} is not a directory")

    def lstat(self, path: str) -> Entry | None:
        """What is at `path` (a link is reported, not followed), or None. UnsafePath when a
        directory on the way is a link or not a directory."""
        if path == "/":
            return Entry.of(os.fstat(self.root_fd))
        found = self.parent(path, owner=None, create=False)
        if found is None:
            return None
        fd, name = found
        try:
            return Entry.of(os.lstat(name, dir_fd=fd))
        except FileNotFoundError:
            return None

    def read(self, path: str, limit: int, single_link: bool = True) -> bytes:
        """The contents of the regular file at `path`. It must have one link unless
        `single_link` is False: a hard link to another file (say /etc/shadow) would let its
        contents be copied to where its owner did not put them. Root's own files in root's
        directories (/etc/shadow itself) are read with `single_link=False`: they are replaced
        by a rename, never written in place."""
        fd, name = self._existing(path)
        file_fd = self._open_entry(fd, name, path)
        try:
            entry = Entry.of(os.fstat(file_fd))
            if single_link:
                self._check_single_file(path, entry)
            elif entry.kind != "file":
                raise UnsafePath(f"{path} is a {entry.kind}, not a regular file")
            if entry.size > limit:
                raise UnsafePath(f"{path} is {entry.size} bytes, more than {limit}")
            with os.fdopen(os.dup(file_fd), "rb") as f:
                return f.read(limit + 1)[:limit]
        finally:
            os.close(file_fd)

    def readlink(self, path: str) -> str:
        fd, name = self._existing(path)
        return os.readlink(name, dir_fd=fd)

    def listdir(self, path: str) -> list[str]:
        """The names in the directory at `path` (sorted; [] when it is missing)."""
        found = self.parent(path, owner=None) if path != "/" else (self.root_fd, ".")
        if found is None:
            return []
        fd, name = found
        try:
            child = os.open(name, O_DIR, dir_fd=fd)
        except FileNotFoundError:
            return []
        except OSError as error:
            raise self._refusal(fd, name, path, error) from None
        try:
            return sorted(os.listdir(child))
        finally:
            os.close(child)

    def _place(self, path: str, owner: int) -> tuple[int, str]:
        """parent() that makes missing directories."""
        found = self.parent(path, owner, create=True)
        assert found is not None
        return found

    def _open_entry(self, dir_fd: int, name: str, path: str) -> int:
        """The file or directory `name`, opened without following a link (a link is refused
        with a message that names it) and without blocking on a FIFO."""
        try:
            return os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK,
                           dir_fd=dir_fd)
        except FileNotFoundError:
            raise
        except OSError as error:
            raise self._refusal(dir_fd, name, path, error) from None

    def _existing(self, path: str) -> tuple[int, str]:
        found = self.parent(path, owner=None)
        if found is None:
            raise FileNotFoundError(path)
        return found

    @staticmethod
    def _check_single_file(path: str, entry: Entry) -> None:
        if entry.kind != "file":
            raise UnsafePath(f"{path} is a {entry.kind}, not a regular file")
        if entry.nlink > 1:
            raise UnsafePath(f"{path} has {entry.nlink} hard links: it may be another file "
                             "(say /etc/shadow) under a second name; refusing to use it")

    # ---- changes ---------------------------------------------------------------------------

    def mkdir(self, dir_fd: int, name: str, path: str, mode: int, uid: int, gid: int) -> None:
        self.before_change(f"mkdir {path}")
        os.mkdir(name, 0o700, dir_fd=dir_fd)
        keep = self._keep(os.dup(dir_fd))
        self._undo.append(lambda: os.rmdir(name, dir_fd=keep))
        fd = os.open(name, O_DIR, dir_fd=dir_fd)
        try:
            os.fchown(fd, uid, gid)
            os.fchmod(fd, mode)
        finally:
            os.close(fd)

    def _move_aside(self, dir_fd: int, name: str) -> None:
        """Rename the entry `name` to a hidden name in the same directory; rollback renames it
        back, commit removes it."""
        aside = f"{UNDO_PREFIX}{secrets.token_hex(8)}"
        os.rename(name, aside, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        keep = self._keep(os.dup(dir_fd))
        self._undo.append(lambda: os.rename(aside, name, src_dir_fd=keep, dst_dir_fd=keep))
        self._moved_aside.append((keep, aside))

    def _clear(self, dir_fd: int, name: str, path: str) -> None:
        """Make room for a new entry `name`: a file or link there is moved aside (never
        followed, never deleted before commit); a directory is refused."""
        try:
            old = os.lstat(name, dir_fd=dir_fd)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(old.st_mode):
            raise UnsafePath(f"{path} is a directory")
        self._move_aside(dir_fd, name)

    def _created(self, dir_fd: int, name: str) -> None:
        keep = self._keep(os.dup(dir_fd))
        self._undo.append(lambda: os.unlink(name, dir_fd=keep))

    def make_directories(self, path: str, mode: int, uid: int, gid: int) -> None:
        """`path` and the directories above it: new ones get root's 0755, the last `mode`."""
        fd, name = self._place(path, uid)
        self.mkdir(fd, name, path, mode, uid, gid)

    def write_file(self, path: str, data: bytes, mode: int, uid: int, gid: int) -> None:
        """Put a regular file with `data` at `path` (atomically; what was there is moved
        aside). Directories above it are made as root's."""
        fd, name = self._place(path, uid)
        self.before_change(f"write {path}")
        self._clear(fd, name, path)
        common.write_atomic_at(fd, name, data, mode, uid, gid)
        self._created(fd, name)

    def symlink(self, path: str, target: str, uid: int, gid: int) -> None:
        fd, name = self._place(path, uid)
        self.before_change(f"link {path}")
        self._clear(fd, name, path)
        os.symlink(target, name, dir_fd=fd)
        self._created(fd, name)
        os.chown(name, uid, gid, dir_fd=fd, follow_symlinks=False)

    def hardlink(self, path: str, target: str) -> None:
        """A hard link at `path` to the regular file at `target` (walked as safely)."""
        source_fd, source_name = self._existing(target)
        entry = Entry.of(os.lstat(source_name, dir_fd=source_fd))
        if entry.kind != "file":
            raise UnsafePath(f"{target} is a {entry.kind}: only regular files are hard-linked")
        fd, name = self._place(path, entry.uid)
        self.before_change(f"hardlink {path}")
        self._clear(fd, name, path)
        os.link(source_name, name, src_dir_fd=source_fd, dst_dir_fd=fd, follow_symlinks=False)
        self._created(fd, name)

    def set_owner_mode(self, path: str, uid: int | None, gid: int | None,
                       mode: int | None) -> None:
        """Change what is given (None: keep) of the file or directory at `path`, through its
        descriptor. A file with more than one hard link is refused."""
        if uid is None and gid is None and mode is None:
            return
        fd, name = self._existing(path)
        obj = self._open_entry(fd, name, path)
        keep = self._keep(obj)
        entry = Entry.of(os.fstat(obj))
        self.parent(path, entry.uid if uid is None else uid)  # the transition check
        if entry.kind != "directory":
            self._check_single_file(path, entry)
        new = (entry.uid if uid is None else uid, entry.gid if gid is None else gid,
               entry.mode if mode is None else mode)
        if new == (entry.uid, entry.gid, entry.mode):
            return
        self.before_change(f"chown/chmod {path}")

        def restore() -> None:
            os.fchown(keep, entry.uid, entry.gid)
            os.fchmod(keep, entry.mode)

        self._undo.append(restore)
        os.fchown(obj, new[0], new[1])
        os.fchmod(obj, new[2])  # after fchown, which clears setuid/setgid bits

    def remove(self, path: str) -> bool:
        """Remove the file or link at `path`, or the directory if it is empty. False: there was
        nothing, or a directory that is not empty."""
        found = self.parent(path, owner=None)
        if found is None:
            return False
        fd, name = found
        try:
            old = os.lstat(name, dir_fd=fd)
        except FileNotFoundError:
            return False
        self.before_change(f"remove {path}")
        if stat.S_ISDIR(old.st_mode):
            try:
                os.rmdir(name, dir_fd=fd)
            except OSError:
                return False
            keep = self._keep(os.dup(fd))

            def recreate() -> None:
                os.mkdir(name, 0o700, dir_fd=keep)
                os.chown(name, old.st_uid, old.st_gid, dir_fd=keep, follow_symlinks=False)
                os.chmod(name, stat.S_IMODE(old.st_mode), dir_fd=keep, follow_symlinks=False)

            self._undo.append(recreate)
            return True
        self._move_aside(fd, name)
        return True

    # ---- the end -----------------------------------------------------------------------------

    def rollback(self) -> None:
        """Undo every change, newest first."""
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()
        self._moved_aside.clear()
        self.close()

    def commit(self) -> None:
        for fd, name in self._moved_aside:
            try:
                entry = os.lstat(name, dir_fd=fd)
                if stat.S_ISDIR(entry.st_mode):
                    os.rmdir(name, dir_fd=fd)
                else:
                    os.unlink(name, dir_fd=fd)
                os.fsync(fd)
            except FileNotFoundError:
                pass
        self._undo.clear()
        self._moved_aside.clear()
        self.close()

    def close(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds.clear()
        if self.root_fd >= 0:
            os.close(self.root_fd)
            self.root_fd = -1
