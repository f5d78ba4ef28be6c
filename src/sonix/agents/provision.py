"""sonix-provision: make a generic image into one machine, in the initrd (standard library only).

    sonix-provision --root /sysroot     run by sonix-provision.service before switch-root

It runs the image's own python3 from the verity-protected /usr of the new root (so the initrd
does not grow), finds a configuration source (metadata.py: kernel command line, systemd
credentials, config drive, EC2, GCE, matchbox), checks the Ignition config it got (ignition.py)
and fetches every remote file it names, and only then writes into the root: users and groups,
directories, files, links, units, SSH keys, the host name, the update channel, and the
Afterburn-style attributes in /run/metadata/sonix. docs/provisioning.md has the order and the
rules.

Policy per source: `first-boot` (like Ignition: provisioned once, later boots only restore
/run/metadata/sonix) or `every-boot` (the config is applied again at each boot, declaratively:
what an earlier boot wrote and the config no longer names is removed).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import sys
import tempfile
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from . import ignition, metadata

CONFIG = "usr/lib/sonix/provision.json"  # from modules/services/provisioning.nix
STATE_DIR = "var/lib/sonix/provision"  # state.json and the attributes of the provisioning boot
METADATA_FILE = Path("/run/metadata/sonix")  # the initrd's /run is the system's /run
UPDATE_OVERRIDE = "etc/sonix/update.json"  # the update agent's machine-local settings
WANTS = "etc/systemd/system/multi-user.target.wants"
TMPFILES_MARK = "# sonix-provision: "  # first line of the tmpfiles.d overrides it writes


class ProvisionError(Exception):
    """The configuration cannot be applied; nothing of it was written."""

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems)


def log(message: str, priority: int = 6) -> None:
    """One line on stderr; the unit sends it to the journal and the console."""
    print(f"<{priority}>sonix-provision: {message}", file=sys.stderr, flush=True)


# ---- settings and state ------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """/usr/lib/sonix/provision.json, written by the provisioning module."""

    sources: tuple[str, ...]  # tried in this order
    every_boot: frozenset[str]  # sources whose config is applied at every boot
    timeout: float  # seconds for all network sources together
    on_error: str  # emergency | continue
    user: str  # who gets the SSH keys of the metadata
    matchbox_url: str | None

    @staticmethod
    def load(root: Path) -> Settings:
        raw: dict[str, Any] = json.loads((root / CONFIG).read_text())
        return Settings(
            sources=tuple(raw["sources"]),
            every_boot=frozenset(raw.get("everyBoot", [])),
            timeout=float(raw.get("timeout", 120)),
            on_error=raw.get("onError", "emergency"),
            user=raw.get("user", "admin"),
            matchbox_url=raw.get("matchboxUrl"),
        )


def load_state(root: Path) -> dict[str, Any]:
    path = root / STATE_DIR / "state.json"
    if not path.is_file():
        return {}
    state: dict[str, Any] = json.loads(path.read_text())
    return state


def write_atomically(path: Path, data: bytes, mode: int = 0o644, uid: int = 0, gid: int = 0
                     ) -> None:
    """Write through a temporary file in the same directory: a power cut leaves the old file
    or the new one, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchown(f.fileno(), uid, gid)
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---- paths inside the new root -------------------------------------------------------------


def inside(root: Path, path: str) -> Path:
    """`path` (absolute, in the machine's view) under `root`, following the symlinks that are
    already there as the machine would: an absolute link target is relative to root, and
    nothing resolves to a place outside it."""
    parts = PurePosixPath(path).parts[1:]
    resolved = PurePosixPath("/")
    for depth, part in enumerate(parts):
        candidate = resolved / part
        host = root / str(candidate).lstrip("/")
        last = depth == len(parts) - 1
        if not last and host.is_symlink():
            target = PurePosixPath(os.readlink(host))
            joined = target if target.is_absolute() else candidate.parent / target
            resolved = PurePosixPath(os.path.normpath(str(joined)))
            if not str(resolved).startswith("/"):
                resolved = PurePosixPath("/")
        else:
            resolved = candidate
    return root / str(resolved).lstrip("/")


# ---- accounts: /etc/passwd, group, shadow, gshadow of the new root --------------------------


ACCOUNT_FILES = {"passwd": 0o644, "group": 0o644, "shadow": 0o640, "gshadow": 0o640}


@dataclass
class Accounts:
    """The account files of the root, edited in memory and written back at once."""

    root: Path
    passwd: list[list[str]] = field(default_factory=list)
    group: list[list[str]] = field(default_factory=list)
    shadow: list[list[str]] = field(default_factory=list)
    gshadow: list[list[str]] = field(default_factory=list)
    changed: bool = False


    @staticmethod
    def read(root: Path) -> Accounts:
        accounts = Accounts(root)
        for name in ACCOUNT_FILES:
            path = root / "etc" / name
            lines = path.read_text().splitlines() if path.is_file() else []
            setattr(accounts, name, [line.split(":") for line in lines if line.strip()])
        return accounts

    def user(self, name: str) -> list[str] | None:
        return next((entry for entry in self.passwd if entry[0] == name), None)

    def group_entry(self, name: str) -> list[str] | None:
        return next((entry for entry in self.group if entry[0] == name), None)

    def uid(self, owner: str | int | None) -> int:
        if owner is None:
            return 0
        if isinstance(owner, int):
            return owner
        entry = self.user(owner)
        if entry is None:
            raise ProvisionError(f"user {owner!r} does not exist")
        return int(entry[2])

    def gid(self, owner: str | int | None) -> int:
        if owner is None:
            return 0
        if isinstance(owner, int):
            return owner
        entry = self.group_entry(owner)
        if entry is None:
            raise ProvisionError(f"group {owner!r} does not exist")
        return int(entry[2])

    def free_id(self, entries: list[list[str]], system: bool) -> int:
        taken = {int(e[2]) for e in entries if e[2].isdigit()}
        candidates = range(999, 100, -1) if system else range(1000, 60000)
        return next(i for i in candidates if i not in taken)

    def add_group(self, name: str, gid: int | None, password_hash: str | None, system: bool
                  ) -> None:
        if gid is None:
            gid = self.free_id(self.group, system)
        self.group.append([name, "x", str(gid), ""])
        self.gshadow.append([name, password_hash or "!", "", ""])
        self.changed = True

    def add_member(self, user: str, group: str) -> None:
        for table in (self.group, self.gshadow):
            entry = next((e for e in table if e[0] == group), None)
            if entry is None:
                continue
            members = [m for m in entry[3].split(",") if m]
            if user not in members:
                entry[3] = ",".join([*members, user])
                self.changed = True

    def remove_user(self, name: str) -> None:
        self.passwd = [e for e in self.passwd if e[0] != name]
        self.shadow = [e for e in self.shadow if e[0] != name]
        for table in (self.group, self.gshadow):
            for entry in table:
                members = [m for m in entry[3].split(",") if m and m != name]
                entry[3] = ",".join(members)
        self.changed = True

    def remove_group(self, name: str) -> None:
        self.group = [e for e in self.group if e[0] != name]
        self.gshadow = [e for e in self.gshadow if e[0] != name]
        self.changed = True

    def set_password(self, user: str, password_hash: str) -> None:
        entry = next((e for e in self.shadow if e[0] == user), None)
        if entry is None:
            self.shadow.append([user, password_hash, days_since_epoch(), "0", "99999", "7", "",
                                "", ""])
        elif entry[1] != password_hash:
            entry[1] = password_hash
            entry[2] = days_since_epoch()
        else:
            return
        self.changed = True

    def write(self) -> None:
        if not self.changed:
            return
        shadow_gid = self.gid("shadow") if self.group_entry("shadow") else 0
        for name, mode in ACCOUNT_FILES.items():
            entries: list[list[str]] = getattr(self, name)
            text = "".join(":".join(entry) + "\n" for entry in entries)
            gid = shadow_gid if name in ("shadow", "gshadow") else 0
            write_atomically(self.root / "etc" / name, text.encode(), mode, 0, gid)
        self.changed = False


def days_since_epoch() -> str:
    return str(int(dt.datetime.now(dt.UTC).timestamp() // 86400))


# ---- the plan: everything the config asks for, checked and fetched before writing ---------


@dataclass(frozen=True)
class Node:
    """One thing to put at `path` in the root: a file (data), a directory or a link."""

    path: str
    kind: str  # file | directory | link | hardlink
    data: bytes = b""
    target: str = ""
    mode: int | None = None
    user: str | int | None = None
    group: str | int | None = None
    overwrite: bool = False
    append: bool = False


@dataclass
class Plan:
    source: str
    nodes: list[Node] = field(default_factory=list)
    users: list[ignition.User] = field(default_factory=list)
    groups: list[ignition.Group] = field(default_factory=list)
    ssh_keys: dict[str, list[str]] = field(default_factory=dict)  # user -> keys
    hostname: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    channel: str | None = None
    config_sha256: str | None = None


Fetch = Callable[[str, float], bytes]  # (url, timeout in seconds) -> body


def http_fetch(url: str, timeout: float) -> bytes:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=timeout) as response:
        data: bytes = response.read()
    return data


def contents_of(source: ignition.Contents | None, fetch: Fetch, where: str,
                timeout: float = 60.0) -> bytes:
    """The bytes of an ignition content source: inline (decoded and checked by ignition.py)
    or remote (fetched here, then decompressed and checked against its hash)."""
    if source is None:
        return b""
    if isinstance(source, bytes):
        return source
    try:
        return source.decode(fetch(source.url, timeout))
    except OSError as e:
        raise ProvisionError(f"{where}: cannot fetch {source.url}: {e}") from e
    except ValueError as e:
        raise ProvisionError(f"{where}: {e}") from e


def make_plan(found: metadata.Found, settings: Settings, fetch: Fetch = http_fetch) -> Plan:
    """Parse and check the config of `found` and fetch what it names; raises ProvisionError
    (or ignition.ConfigError) before anything is written."""
    plan = Plan(source=found.source, hostname=found.hostname, channel=found.channel,
                attributes=dict(found.attributes))
    plan.attributes["SONIX_PROVISION_SOURCE"] = found.source
    if found.ssh_keys:
        plan.ssh_keys[settings.user] = list(found.ssh_keys)
    if found.config is None or not found.config.strip():
        return plan
    if found.config.lstrip()[:1] == b"#":  # cloud-config or a script: not for sonix
        log(f"{found.source}: the user data is not an Ignition config (it starts with '#'); "
            "only the metadata is used")
        return plan
    plan.config_sha256 = hashlib.sha256(found.config).hexdigest()
    config = ignition.parse(found.config)
    # ignition.timeouts.httpTotal bounds each fetch (0 or unset: 60 s here).
    timeout = float(config.timeouts.http_total or 0) or 60.0
    for d in config.directories:
        plan.nodes.append(Node(d.path, "directory", mode=d.mode, user=d.user, group=d.group,
                               overwrite=d.overwrite))
    for i, f in enumerate(config.files):
        where = f"$.storage.files.{i}"
        data = contents_of(f.contents, fetch, where, timeout)
        appended = b"".join(contents_of(a, fetch, f"{where}.append", timeout)
                            for a in f.append)
        plan.nodes.append(Node(f.path, "file", data=data + appended, mode=f.mode, user=f.user,
                               group=f.group, overwrite=f.overwrite,
                               append=f.contents is None and bool(f.append)))
    for link in config.links:
        plan.nodes.append(Node(link.path, "hardlink" if link.hard else "link",
                               target=link.target, user=link.user, group=link.group,
                               overwrite=link.overwrite))
    for unit in config.units:
        base = f"/etc/systemd/system/{unit.name}"
        if unit.mask:
            plan.nodes.append(Node(base, "link", target="/dev/null", overwrite=True))
        elif unit.contents is not None:
            plan.nodes.append(Node(base, "file", data=unit.contents.encode(), mode=0o644,
                                   overwrite=True))
        for dropin in unit.dropins:
            plan.nodes.append(Node(f"{base}.d/{dropin.name}", "file",
                                   data=dropin.contents.encode(), mode=0o644, overwrite=True))
        if unit.enabled and not unit.mask:
            # A unit of the config, or one the image ships in /usr.
            target = (f"../{unit.name}" if unit.contents is not None
                      else f"/usr/lib/systemd/system/{unit.name}")
            plan.nodes.append(Node(f"/{WANTS}/{unit.name}", "link", target=target,
                                   overwrite=True))
    plan.users = list(config.users)
    plan.groups = list(config.groups)
    for user in config.users:
        if user.ssh_authorized_keys:
            plan.ssh_keys.setdefault(user.name, []).extend(user.ssh_authorized_keys)
    if any(n.path == "/etc/hostname" for n in plan.nodes):
        plan.hostname = None  # the config's own /etc/hostname wins over the metadata's
    return plan


def factory_link(host: Path) -> bool:
    """A link into /usr/share/factory: the image's default for an /etc path, which a config may
    replace without `overwrite` (on sonix /etc/hostname always exists as such a link)."""
    return host.is_symlink() and "usr/share/factory/" in os.readlink(host)


def check_plan(root: Path, plan: Plan, ours: set[str]) -> None:
    """What can be known before writing: paths sonix cannot write, and nodes that exist
    without `overwrite` (unless an earlier boot of this provisioning wrote them)."""
    problems = []
    planned_users = {u.name for u in plan.users} | set(plan.ssh_keys)
    planned_groups = {g.name for g in plan.groups} | {u.name for u in plan.users}
    accounts = Accounts.read(root)
    for node in plan.nodes:
        if node.path == "/usr" or node.path.startswith("/usr/"):
            problems.append(f"{node.path}: /usr is the read-only, verity-protected image; "
                            "put files in /etc, /var or /srv")
            continue
        host = inside(root, node.path)
        exists = (host.exists() or host.is_symlink()) and not factory_link(host)
        if exists and not node.overwrite and not node.append and node.path not in ours:
            if node.kind == "directory" and host.is_dir() and not host.is_symlink():
                continue
            if node.kind == "file" and not node.data and host.is_file():
                continue  # only mode/owner change: allowed, as in Ignition
            problems.append(f"{node.path} exists; set overwrite: true to replace it")
        for who, known, kind in ((node.user, planned_users, "user"),
                                 (node.group, planned_groups, "group")):
            if isinstance(who, str) and who not in known and (
                    (accounts.user(who) if kind == "user" else accounts.group_entry(who))
                    is None):
                problems.append(f"{node.path}: {kind} {who!r} does not exist")
    for user in plan.users:
        for name in (*user.groups, *([user.primary_group] if user.primary_group else [])):
            if name not in planned_groups and accounts.group_entry(name) is None:
                problems.append(f"user {user.name}: group {name!r} does not exist")
    if problems:
        raise ProvisionError("the configuration cannot be applied to this machine", problems)


# ---- applying ------------------------------------------------------------------------------


def apply_accounts(root: Path, plan: Plan, accounts: Accounts, settings: Settings) -> None:
    for group in plan.groups:
        if not group.should_exist:
            if accounts.group_entry(group.name) is not None:
                accounts.remove_group(group.name)
                log(f"removed group {group.name} (shouldExist: false)")
            continue
        if accounts.group_entry(group.name) is None:
            accounts.add_group(group.name, group.gid, group.password_hash, group.system)
            log(f"created group {group.name}")
        elif group.password_hash:
            shadow = next(e for e in accounts.gshadow if e[0] == group.name)
            shadow[1] = group.password_hash
            accounts.changed = True
    users = list(plan.users)
    if settings.user in plan.ssh_keys and all(u.name != settings.user for u in users):
        users.append(default_user(settings.user))
    for user in users:
        entry = accounts.user(user.name)
        if not user.should_exist:
            if entry is not None:
                accounts.remove_user(user.name)
                log(f"removed user {user.name} (shouldExist: false; the home stays)")
            continue
        if entry is None:
            create_user(root, accounts, user)
            log(f"created user {user.name}")
        else:
            if user.gecos is not None:
                entry[4] = user.gecos
            if user.shell is not None:
                entry[6] = user.shell
            accounts.changed = accounts.changed or user.gecos is not None or (
                user.shell is not None)
        if user.password_hash is not None:
            accounts.set_password(user.name, user.password_hash)
        for name in user.groups:
            accounts.add_member(user.name, name)
    accounts.write()


def default_user(name: str) -> ignition.User:
    """The account for the metadata's SSH keys when the config does not declare it."""
    return ignition.User(
        name=name, should_exist=True, password_hash=None, ssh_authorized_keys=(), uid=None,
        gecos=None, home_dir=None, no_create_home=False, primary_group=None, groups=(),
        no_user_group=False, no_log_init=False, shell=None, system=False)


def create_user(root: Path, accounts: Accounts, user: ignition.User) -> None:
    uid = user.uid if user.uid is not None else accounts.free_id(accounts.passwd, user.system)
    if user.primary_group is not None:
        gid = accounts.gid(user.primary_group)
    elif user.no_user_group:
        gid = accounts.gid("users")
    else:
        taken = {int(e[2]) for e in accounts.group}
        gid = uid if uid not in taken else accounts.free_id(accounts.group, user.system)
        accounts.add_group(user.name, gid, None, user.system)
    home = user.home_dir or (f"/home/{user.name}" if not user.system else "/")
    shell = user.shell or ("/usr/bin/bash" if not user.system else "/usr/sbin/nologin")
    accounts.passwd.append([user.name, "x", str(uid), str(gid), user.gecos or "", home, shell])
    accounts.set_password(user.name, user.password_hash or "*")
    accounts.changed = True
    if not user.no_create_home and not user.system:
        directory = inside(root, home)
        if not directory.exists():
            directory.mkdir(parents=True, mode=0o700)
            skel = root / "etc/skel"
            if skel.is_dir():
                for item in skel.iterdir():
                    if item.is_file():
                        write_atomically(directory / item.name, item.read_bytes(), 0o644, uid,
                                         gid)
            os.chown(directory, uid, gid)
            os.chmod(directory, 0o700)


def apply_nodes(root: Path, plan: Plan, accounts: Accounts) -> list[str]:
    written = []
    for node in plan.nodes:
        host = inside(root, node.path)
        uid, gid = accounts.uid(node.user), accounts.gid(node.group)
        if node.kind == "directory":
            host.mkdir(parents=True, exist_ok=True)
            os.chown(host, uid, gid)
            os.chmod(host, node.mode if node.mode is not None else 0o755)
        elif node.kind == "file":
            mode = node.mode if node.mode is not None else 0o644
            if node.append and host.is_file():
                data = host.read_bytes() + node.data
            elif not node.data and host.is_file() and not node.overwrite:
                data = host.read_bytes()
            else:
                data = node.data
            if host.is_symlink() or not host.is_file() or host.read_bytes() != data:
                if host.is_symlink():
                    host.unlink()
                write_atomically(host, data, mode, uid, gid)
            else:
                os.chown(host, uid, gid)
                os.chmod(host, mode)
        else:
            host.parent.mkdir(parents=True, exist_ok=True)
            if host.is_symlink() or host.exists():
                if host.is_symlink() and node.kind == "link" and os.readlink(host) == node.target:
                    written.append(node.path)
                    continue
                if host.is_dir() and not host.is_symlink():
                    raise ProvisionError(f"{node.path} is a directory")
                host.unlink()
            if node.kind == "link":
                host.symlink_to(node.target)
                os.lchown(host, uid, gid)
            else:
                os.link(inside(root, node.target), host)
        written.append(node.path)
        log(f"wrote {node.kind} {node.path}")
    return written


def apply_ssh_keys(root: Path, plan: Plan, accounts: Accounts) -> list[str]:
    """~/.ssh/authorized_keys of each user with keys: the keys of the config and of the
    metadata, nothing else (in every-boot mode the source is the truth)."""
    written = []
    for name, keys in sorted(plan.ssh_keys.items()):
        entry = accounts.user(name)
        if entry is None:
            raise ProvisionError(f"SSH keys for {name}, who does not exist")
        uid, gid, home = int(entry[2]), int(entry[3]), entry[5]
        ssh = inside(root, home) / ".ssh"
        ssh.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chown(ssh, uid, gid)
        unique = list(dict.fromkeys(k.strip() for k in keys if k.strip()))
        write_atomically(ssh / "authorized_keys", "".join(k + "\n" for k in unique).encode(),
                         0o600, uid, gid)
        written.append(f"{home.rstrip('/')}/.ssh/authorized_keys")
        log(f"installed {len(unique)} SSH key(s) for {name}")
    return written


def apply_channel(root: Path, channel: str) -> None:
    path = root / UPDATE_OVERRIDE
    current: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
    if current.get("channel") != channel:
        current["channel"] = channel
        write_atomically(path, (json.dumps(current, indent=2) + "\n").encode())
        log(f"update channel: {channel}")


def remove_stale(root: Path, before: Iterable[str], now: set[str]) -> None:
    """Every-boot mode: what an earlier boot wrote and the config no longer names."""
    for path in sorted(set(before) - now, key=len, reverse=True):
        host = inside(root, path)
        if host.is_symlink() or host.is_file():
            host.unlink()
            log(f"removed {path} (no longer in the configuration)")
        elif host.is_dir():
            try:
                host.rmdir()
                log(f"removed {path} (no longer in the configuration)")
            except OSError:
                log(f"kept {path}: no longer in the configuration but not empty", 4)


def keep_provisioned(line: str, paths: set[str]) -> str | None:
    """A tmpfiles.d line of the image, changed so that it leaves a provisioned path alone:
    `L+`/`C+` (replace at every boot) lose the `+` and still create the image's default when
    the path is missing; `z`/`Z`/`t`/`T`/`h`/`H` (adjust an existing path) are dropped."""
    fields = line.split()
    if len(fields) < 2 or fields[0].startswith("#") or fields[1] not in paths:
        return line
    kind = fields[0]
    if kind[0] in "zZtThH":
        return None
    return line.replace(kind, kind.replace("+", ""), 1)


def write_tmpfiles_overrides(root: Path, provisioned: Iterable[str]) -> None:
    """systemd-tmpfiles applies the image's lines at every boot, and an `L+` line (how /etc
    entries of the image link into its factory tree, /etc/hostname among them) replaces a
    provisioned file. A line with `+` cannot be outvoted by another file's line for the same
    path, so the image's file itself is overridden: /etc/tmpfiles.d/<name> is the booted
    image's /usr/lib/tmpfiles.d/<name> with the provisioned paths' lines made harmless
    (keep_provisioned). Rewritten at every boot before switch-root, so a new release's lines
    apply; overrides that are no longer needed are removed, and an admin's own file of the
    same name is left alone."""
    paths = set(provisioned)
    image = root / "usr/lib/tmpfiles.d"
    target = root / "etc/tmpfiles.d"
    wanted: dict[str, str] = {}
    for conf in sorted(image.glob("*.conf")) if image.is_dir() else []:
        lines = conf.read_text().splitlines()
        kept = [k for line in lines if (k := keep_provisioned(line, paths)) is not None]
        if kept != lines:
            wanted[conf.name] = (f"{TMPFILES_MARK}/usr/lib/tmpfiles.d/{conf.name} without "
                                 "replacing what provisioning wrote\n"
                                 + "".join(k + "\n" for k in kept))
    for existing in sorted(target.glob("*.conf")) if target.is_dir() else []:
        ours = existing.read_text().startswith(TMPFILES_MARK)
        if ours and existing.name not in wanted:
            existing.unlink()
    for name, text in wanted.items():
        path = target / name
        if path.exists() and not path.read_text().startswith(TMPFILES_MARK):
            log(f"/etc/tmpfiles.d/{name} is the admin's: the image's lines in it may replace "
                "provisioned files", 4)
            continue
        if not path.exists() or path.read_text() != text:
            write_atomically(path, text.encode())


def write_attributes(root: Path, attributes: dict[str, str], metadata_file: Path) -> None:
    text = "".join(f"{key}={metadata.quote_env(value)}\n"
                   for key, value in sorted(attributes.items()))
    write_atomically(root / STATE_DIR / "metadata", text.encode(), 0o644)
    write_atomically(metadata_file, text.encode(), 0o644)


def apply(root: Path, plan: Plan, settings: Settings, state: dict[str, Any],
          metadata_file: Path) -> dict[str, Any]:
    ours = set(state.get("written", [])) if state.get("source") == plan.source else set()
    check_plan(root, plan, ours)
    accounts = Accounts.read(root)
    apply_accounts(root, plan, accounts, settings)
    written = apply_nodes(root, plan, accounts)
    written += apply_ssh_keys(root, plan, accounts)
    if plan.hostname:
        write_atomically(root / "etc/hostname", f"{plan.hostname}\n".encode())
        log(f"host name: {plan.hostname}")
    if plan.channel:
        apply_channel(root, plan.channel)
    if plan.hostname:
        written.append("/etc/hostname")
    if plan.source in settings.every_boot:
        remove_stale(root, ours, set(written))
    write_tmpfiles_overrides(root, written)
    write_attributes(root, plan.attributes, metadata_file)
    return {"source": plan.source, "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "config_sha256": plan.config_sha256, "written": sorted(set(written)),
            "policy": "every-boot" if plan.source in settings.every_boot else "first-boot"}


# ---- the run -------------------------------------------------------------------------------


def run(root: Path, settings: Settings, env: metadata.Environment,
        metadata_file: Path = METADATA_FILE, fetch: Fetch = http_fetch) -> int:
    state = load_state(root)
    # The first boot asks every source; later boots only the one that provisioned the machine,
    # and only when its policy is every-boot.
    sources = (list(settings.sources) if not state
               else [state["source"]] if state.get("source") in settings.every_boot else [])
    if not sources:
        saved = root / STATE_DIR / "metadata"
        if saved.is_file():
            write_atomically(metadata_file, saved.read_bytes())
        write_tmpfiles_overrides(root, state.get("written", []))
        log(f"provisioned on {state.get('at')} from {state.get('source') or 'nothing'}; "
            "first-boot policy: nothing to do")
        return 0
    try:
        found = metadata.discover(env, sources, settings.timeout)
        if found is None:
            log(f"no configuration found ({', '.join(sources)}): the image boots as it is")
            new_state = state or {"source": None, "written": []}
            new_state["at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
            write_state(root, new_state)
            return 0
        log(f"configuration from {found.source}")
        plan = make_plan(found, settings, fetch)
        new_state = apply(root, plan, settings, state, metadata_file)
    except ignition.ConfigError as e:
        return failed(settings, "the Ignition config is invalid",
                      [f"{p.path}: {p.message}" for p in e.problems])
    except ProvisionError as e:
        return failed(settings, str(e), e.problems)
    except metadata.SourceError as e:
        return failed(settings, str(e), [])
    write_state(root, new_state)
    log(f"done: {len(new_state['written'])} paths from {found.source} "
        f"({new_state['policy']})")
    return 0


def write_state(root: Path, state: dict[str, Any]) -> None:
    write_atomically(root / STATE_DIR / "state.json",
                     (json.dumps(state, indent=2, sort_keys=True) + "\n").encode(), 0o600)


def failed(settings: Settings, message: str, problems: Sequence[str]) -> int:
    log(f"{message}; nothing of it was written", 3)
    for problem in problems:
        log(f"  {problem}", 3)
    if settings.on_error == "emergency":
        log("stopping the boot (provisioning.onError = \"emergency\")", 2)
        return 1
    log("booting the image as it is (provisioning.onError = \"continue\")", 4)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sonix-provision", description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("/sysroot"),
                        help="the new root file system (default /sysroot)")
    args = parser.parse_args(argv)
    root: Path = args.root
    settings = Settings.load(root)
    env = metadata.Environment.from_system(matchbox_url=settings.matchbox_url)
    return run(root, settings, env)


if __name__ == "__main__":
    sys.exit(main())

