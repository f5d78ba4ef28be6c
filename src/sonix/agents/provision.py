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

Every write goes through rootdir.Transaction: no path is resolved through a symbolic link, a
directory owned by another user on the way to a path root writes is refused, and a config
that fails at any step leaves the root exactly as it was (docs/threat-model.md).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import re
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import common, ignition, metadata, rootdir

CONFIG = "usr/lib/sonix/provision.json"  # from modules/services/provisioning.nix
STATE_DIR = "/var/lib/sonix/provision"  # state.json and the attributes of the provisioning boot
METADATA_FILE = Path("/run/metadata/sonix")  # the initrd's /run is the system's /run
UPDATE_OVERRIDE = "/etc/sonix/update.json"  # the update agent's machine-local settings
WANTS = f"{ignition.UNIT_DIR}/{ignition.WANTED_BY}.wants"
TMPFILES_MARK = "# sonix-provision: "  # first line of the tmpfiles.d overrides it writes
MAX_READ = 16 * 1024 * 1024  # the largest existing file provisioning reads (accounts, appends)
DEFAULT_FETCH_TIMEOUT = 60.0  # seconds per remote file when ignition.timeouts.httpTotal is 0
# RFC 1123 host names: dot-separated labels of letters, digits and inner hyphens.
HOSTNAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                      r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")

log = common.Logger("sonix-provision")


class ProvisionError(Exception):
    """The configuration cannot be applied; nothing of it was written."""

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems)


# ---- settings and state ------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """/usr/lib/sonix/provision.json, written by the provisioning module."""

    sources: tuple[str, ...]  # tried in this order
    every_boot: frozenset[str]  # sources whose config is applied at every boot
    timeout: float  # seconds for all network sources together, and for all remote files
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
    """What the last provisioning run recorded; {} before the first. A state file that is
    not a JSON object stops provisioning (ProvisionError): guessing could apply a first-boot
    config a second time."""
    with rootdir.Transaction(root) as tx:
        try:
            data = tx.read(f"{STATE_DIR}/state.json", MAX_READ)
        except FileNotFoundError:
            return {}
        except (OSError, rootdir.UnsafePath) as error:
            raise ProvisionError(f"cannot read {STATE_DIR}/state.json: {error}") from None
    try:
        state = json.loads(data)
    except ValueError:
        state = None
    if not isinstance(state, dict):
        raise ProvisionError(f"{STATE_DIR}/state.json is damaged (not a JSON object); look at "
                             "it, then remove it to provision this machine again")
    return state


# ---- accounts: /etc/passwd, group, shadow, gshadow of the new root --------------------------


ACCOUNT_FILES = {"passwd": 0o644, "group": 0o644, "shadow": 0o640, "gshadow": 0o640}
ACCOUNT_FIELDS = {"passwd": 7, "group": 4, "shadow": 9, "gshadow": 4}


@dataclass
class Accounts:
    """The account files of the root, edited in memory and written back at once."""

    passwd: list[list[str]] = field(default_factory=list)
    group: list[list[str]] = field(default_factory=list)
    shadow: list[list[str]] = field(default_factory=list)
    gshadow: list[list[str]] = field(default_factory=list)
    changed: bool = False

    @staticmethod
    def read(tx: rootdir.Transaction) -> Accounts:
        accounts = Accounts()
        for name, fields in ACCOUNT_FIELDS.items():
            try:
                data = tx.read(f"/etc/{name}", MAX_READ, single_link=False)
                text = data.decode("utf-8", "surrogateescape")
            except FileNotFoundError:
                text = ""
            entries = [line.split(":") for line in text.splitlines() if line.strip()]
            for entry in entries:  # short lines (a hand-edited file) get their empty fields
                entry.extend([""] * (fields - len(entry)))
            setattr(accounts, name, entries)
        return accounts

    def user(self, name: str) -> list[str] | None:
        return next((entry for entry in self.passwd if entry[0] == name), None)

    def group_entry(self, name: str) -> list[str] | None:
        return next((entry for entry in self.group if entry[0] == name), None)

    def uid(self, owner: str | int | None) -> int | None:
        """The uid of an owner by id or name; None when the config gives none."""
        return self._id(owner, self.user, "user")

    def gid(self, owner: str | int | None) -> int | None:
        return self._id(owner, self.group_entry, "group")

    @staticmethod
    def _id(owner: str | int | None, find: Callable[[str], list[str] | None],
            kind: str) -> int | None:
        if owner is None or isinstance(owner, int):
            return owner
        entry = find(owner)
        if entry is None or not entry[2].isdigit():
            raise ProvisionError(f"{kind} {owner!r} does not exist")
        return int(entry[2])

    def free_id(self, entries: list[list[str]], system: bool) -> int:
        taken = {int(e[2]) for e in entries if e[2].isdigit()}
        candidates = range(999, 100, -1) if system else range(1000, 60000)
        found = next((i for i in candidates if i not in taken), None)
        if found is None:
            raise ProvisionError(f"no free {'system ' if system else ''}id left")
        return found

    def add_group(self, name: str, gid: int | None, password_hash: str | None, system: bool
                  ) -> int:
        if gid is None:
            gid = self.free_id(self.group, system)
        self.group.append([name, "x", str(gid), ""])
        self.gshadow.append([name, password_hash or "!", "", ""])
        self.changed = True
        return gid

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

    def write(self, tx: rootdir.Transaction) -> None:
        if not self.changed:
            return
        shadow_gid = self.gid("shadow") if self.group_entry("shadow") else 0
        for name, mode in ACCOUNT_FILES.items():
            entries: list[list[str]] = getattr(self, name)
            for entry in entries:  # the validator keeps these out; this is the last line
                if any(":" in f or CONTROL.search(f) for f in entry):
                    raise ProvisionError(f"/etc/{name}: refusing to write a field with ':' or "
                                         f"a control character (entry {entry[0]!r})")
            text = "".join(":".join(entry) + "\n" for entry in entries)
            gid = shadow_gid if name in ("shadow", "gshadow") else 0
            tx.write_file(f"/etc/{name}", text.encode("utf-8", "surrogateescape"), mode, 0,
                          gid or 0)
        self.changed = False


def days_since_epoch() -> str:
    return str(int(dt.datetime.now(dt.UTC).timestamp() // 86400))


# ---- the plan: everything the config asks for, checked and fetched before writing ---------


@dataclass(frozen=True)
class Node:
    """One thing to put at `path` in the root: a file (data), a directory or a link.
    Unset mode, user and group keep what an existing node has (new nodes: 0644 or 0755,
    root)."""

    path: str
    kind: str  # file | directory | link | hardlink
    where: str  # the JSON path of the config entry, for errors
    data: bytes = b""
    target: str = ""
    mode: int | None = None
    user: str | int | None = None
    group: str | int | None = None
    overwrite: bool = False
    append: bool = False
    keep_contents: bool = False  # a file entry without a source: only owner and mode


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


Fetch = Callable[[str, common.Deadline, float | None], bytes]  # (url, deadline, header wait)


def http_fetch(url: str, deadline: common.Deadline, response_timeout: float | None) -> bytes:
    """A remote file: at most the largest file a config may hold (gzip is checked again after
    decompression), retried with backoff within `deadline`, never https → http."""
    return common.http_get_retrying(url, max_bytes=ignition.MAX_FILE_SIZE, deadline=deadline,
                                    response_timeout=response_timeout)


@dataclass(frozen=True)
class Fetching:
    """How the remote files of one config are fetched: one deadline for all of them, each
    within its own `httpTotal`."""

    fetch: Fetch
    total: common.Deadline
    per_file: float
    response_timeout: float | None

    def get(self, url: str) -> bytes:
        deadline = common.Deadline(min(self.total.at, self.total.clock() + self.per_file),
                                   self.total.clock)
        return self.fetch(url, deadline, self.response_timeout)


def contents_of(source: ignition.Contents | None, fetching: Fetching, where: str) -> bytes:
    """The bytes of an ignition content source: inline (decoded and checked by ignition.py)
    or remote (fetched here, then decompressed and checked against its hash)."""
    if source is None:
        return b""
    if isinstance(source, bytes):
        return source
    try:
        return source.decode(fetching.get(source.url))
    except common.FetchError as e:
        raise ProvisionError(f"{where}: cannot fetch {source.url}: {e}") from e
    except (OSError, ValueError) as e:
        raise ProvisionError(f"{where}: {e}") from e


def check_metadata(found: metadata.Found) -> None:
    """The host name and SSH keys of a source land in line-oriented files: refuse values
    that would add lines or fields there."""
    if found.hostname is not None and not HOSTNAME.fullmatch(found.hostname):
        raise ProvisionError(f"{found.source}: the host name {common.escape(found.hostname)!r} "
                             "is not a valid host name (letters, digits, '-' and '.', at most "
                             "253 characters)")
    for key in found.ssh_keys:
        if CONTROL.search(key.strip()):
            raise ProvisionError(f"{found.source}: an SSH key holds a line break or another "
                                 f"control character: {common.escape(key[:60])!r}")


def make_plan(found: metadata.Found, settings: Settings, fetch: Fetch = http_fetch,
              clock: Callable[[], float] = time.monotonic) -> Plan:
    """Parse and check the config of `found` and fetch what it names; raises ProvisionError
    (or ignition.ConfigError) before anything is written."""
    check_metadata(found)
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
    fetching = Fetching(
        fetch, common.Deadline.after(settings.timeout, clock),
        per_file=float(config.timeouts.http_total or 0) or DEFAULT_FETCH_TIMEOUT,
        response_timeout=(None if config.timeouts.http_response_headers == 0
                          else float(config.timeouts.http_response_headers or 10)),
    )
    for i, d in enumerate(config.directories):
        plan.nodes.append(Node(d.path, "directory", f"$.storage.directories.{i}", mode=d.mode,
                               user=d.user, group=d.group, overwrite=d.overwrite))
    for i, f in enumerate(config.files):
        where = f"$.storage.files.{i}"
        data = contents_of(f.contents, fetching, f"{where}.contents")
        appended = b"".join(contents_of(a, fetching, f"{where}.append.{j}")
                            for j, a in enumerate(f.append))
        plan.nodes.append(Node(f.path, "file", where, data=data + appended, mode=f.mode,
                               user=f.user, group=f.group, overwrite=f.overwrite,
                               append=f.contents is None and bool(f.append),
                               keep_contents=f.contents is None and not f.append))
    for i, link in enumerate(config.links):
        plan.nodes.append(Node(link.path, "hardlink" if link.hard else "link",
                               f"$.storage.links.{i}", target=link.target, user=link.user,
                               group=link.group, overwrite=link.overwrite))
    for i, unit in enumerate(config.units):
        add_unit(plan, unit, f"$.systemd.units.{i}")
    plan.users = list(config.users)
    plan.groups = list(config.groups)
    for user in config.users:
        if user.ssh_authorized_keys:
            plan.ssh_keys.setdefault(user.name, []).extend(user.ssh_authorized_keys)
    if any(n.path == "/etc/hostname" for n in plan.nodes):
        plan.hostname = None  # the config's own /etc/hostname wins over the metadata's
    return plan


def add_unit(plan: Plan, unit: ignition.Unit, where: str) -> None:
    base = f"{ignition.UNIT_DIR}/{unit.name}"
    if unit.mask:
        plan.nodes.append(Node(base, "link", where, target="/dev/null", overwrite=True))
    elif unit.contents is not None:
        plan.nodes.append(Node(base, "file", where, data=unit.contents.encode(), mode=0o644,
                               user=0, group=0, overwrite=True))
    for j, dropin in enumerate(unit.dropins):
        plan.nodes.append(Node(f"{base}.d/{dropin.name}", "file", f"{where}.dropins.{j}",
                               data=dropin.contents.encode(), mode=0o644, user=0, group=0,
                               overwrite=True))
    if unit.enabled and not unit.mask:
        # A unit of the config, or one the image ships in /usr.
        target = (f"../{unit.name}" if unit.contents is not None
                  else f"/usr/lib/systemd/system/{unit.name}")
        plan.nodes.append(Node(f"{WANTS}/{unit.name}", "link", f"{where}.enabled",
                               target=target, overwrite=True))


def factory_link(tx: rootdir.Transaction, path: str, entry: rootdir.Entry | None) -> bool:
    """A link into /usr/share/factory: the image's default for an /etc path, which a config may
    replace without `overwrite` (on sonix /etc/hostname always exists as such a link)."""
    return entry is not None and entry.kind == "link" and "usr/share/factory/" in tx.readlink(
        path)


def check_plan(tx: rootdir.Transaction, plan: Plan, ours: set[str], accounts: Accounts
               ) -> None:
    """What can be known before writing: paths sonix cannot write, links and directories of
    other users on the way, nodes of another type at a path, nodes that exist without
    `overwrite` (unless an earlier boot of this provisioning wrote them), owners and groups
    that do not exist, a user group that would clash with an existing group."""
    problems = []
    planned_users = {u.name for u in plan.users if u.should_exist} | set(plan.ssh_keys)
    planned_groups = {g.name for g in plan.groups if g.should_exist} | {
        u.name for u in plan.users if u.should_exist and not u.no_user_group
        and u.primary_group is None}
    planned_files = {n.path for n in plan.nodes if n.kind == "file"}
    for node in plan.nodes:
        if node.path == "/usr" or node.path.startswith("/usr/"):
            problems.append(f"{node.where}: {node.path}: /usr is the read-only, "
                            "verity-protected image; put files in /etc, /var or /srv")
            continue
        try:
            problem = node_conflict(tx, node, ours, planned_files)
        except rootdir.UnsafePath as error:
            problem = str(error)
        if problem:
            problems.append(f"{node.where}: {problem}")
        for who, known, kind in ((node.user, planned_users, "user"),
                                 (node.group, planned_groups, "group")):
            if isinstance(who, str) and who not in known and (
                    (accounts.user(who) if kind == "user" else accounts.group_entry(who))
                    is None):
                problems.append(f"{node.where}: {node.path}: {kind} {who!r} does not exist")
    for name in plan.ssh_keys:
        entry = accounts.user(name)
        if entry is None:
            continue  # created by this config: its home is new
        ssh = f"{entry[5].rstrip('/')}/.ssh"
        try:
            found = tx.lstat(ssh)
        except rootdir.UnsafePath as error:
            problems.append(f"SSH keys of {name}: {error}")
            continue
        if found is not None and found.kind != "directory":
            target = f" (to {tx.readlink(ssh)})" if found.kind == "link" else ""
            problems.append(f"SSH keys of {name}: {ssh} is a {found.kind}{target}, owned by "
                            f"uid {found.uid}: provisioning never writes through it; remove it")
    for i, user in enumerate(plan.users):
        where = f"$.passwd.users.{i}"
        for name in (*user.groups, *([user.primary_group] if user.primary_group else [])):
            if name not in planned_groups and accounts.group_entry(name) is None:
                problems.append(f"{where}: user {user.name}: group {name!r} does not exist")
        home = user.home_dir or ""
        if (user.should_exist and accounts.user(user.name) is None and not user.system
                and not user.no_create_home and (home == "/usr" or home.startswith("/usr/"))):
            problems.append(f"{where}.homeDir: {home}: /usr is the read-only, verity-protected "
                            "image; a home goes below /home or /var (or set noCreateHome)")
        if (user.should_exist and accounts.user(user.name) is None
                and user.primary_group is None and not user.no_user_group
                and accounts.group_entry(user.name) is not None
                and user.name not in {g.name for g in plan.groups}):
            problems.append(f"{where}: user {user.name}: a group {user.name!r} exists already; "
                            f"set primaryGroup: {user.name!r} to make it the user's group, or "
                            "noUserGroup: true")
    if problems:
        raise ProvisionError("the configuration cannot be applied to this machine", problems)


def node_conflict(tx: rootdir.Transaction, node: Node, ours: set[str],
                  planned_files: set[str]) -> str | None:
    """Why `node` cannot be put where it goes, or None."""
    entry = tx.lstat(node.path)  # UnsafePath: a link or a non-directory on the way
    if node.kind == "hardlink":
        target = None if node.target in planned_files else tx.lstat(node.target)
        if node.target not in planned_files and (target is None or target.kind != "file"):
            return (f"{node.path}: the hard link's target {node.target} is not a regular file "
                    f"({target.kind if target else 'missing'})")
    if entry is None:
        return None
    if entry.kind == "other":
        return f"{node.path} is a device, socket or pipe: provisioning does not replace those"
    if entry.kind == "directory":
        if node.kind == "directory":
            return None
        return (f"{node.path} is a directory: a {node.kind} cannot replace it (remove the "
                "directory, or choose another path)")
    if node.kind == "directory" and not node.overwrite and node.path not in ours:
        return f"{node.path} is a {entry.kind}; set overwrite: true to replace it by a directory"
    if node.kind == "file" and (node.keep_contents or node.append):
        if entry.kind != "file" and not factory_link(tx, node.path, entry):
            return (f"{node.path} is a {entry.kind}: only an existing regular file keeps its "
                    "contents or is appended to (set contents and overwrite: true)")
        return None
    if not node.overwrite and node.path not in ours and not factory_link(tx, node.path, entry):
        return f"{node.path} exists; set overwrite: true to replace it"
    return None


# ---- applying ------------------------------------------------------------------------------


def apply_accounts(tx: rootdir.Transaction, plan: Plan, accounts: Accounts, settings: Settings
                   ) -> None:
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
            shadow = next((e for e in accounts.gshadow if e[0] == group.name), None)
            if shadow is None:
                accounts.gshadow.append([group.name, group.password_hash, "", ""])
            else:
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
            create_user(tx, accounts, user)
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
    accounts.write(tx)


def default_user(name: str) -> ignition.User:
    """The account for the metadata's SSH keys when the config does not declare it."""
    return ignition.User(
        name=name, should_exist=True, password_hash=None, ssh_authorized_keys=(), uid=None,
        gecos=None, home_dir=None, no_create_home=False, primary_group=None, groups=(),
        no_user_group=False, no_log_init=False, shell=None, system=False)


def create_user(tx: rootdir.Transaction, accounts: Accounts, user: ignition.User) -> None:
    uid = user.uid if user.uid is not None else accounts.free_id(accounts.passwd, user.system)
    if user.primary_group is not None:
        gid = accounts.gid(user.primary_group)
    elif user.no_user_group:
        gid = accounts.gid("users")
    elif (existing := accounts.group_entry(user.name)) is not None:
        gid = int(existing[2])  # declared by this config (check_plan refuses any other)
    else:
        taken = {int(e[2]) for e in accounts.group if e[2].isdigit()}
        wanted = uid if uid not in taken else None
        gid = accounts.add_group(user.name, wanted, None, user.system)
    assert gid is not None
    home = user.home_dir or (f"/home/{user.name}" if not user.system else "/")
    shell = user.shell or ("/usr/bin/bash" if not user.system else "/usr/sbin/nologin")
    accounts.passwd.append([user.name, "x", str(uid), str(gid), user.gecos or "", home, shell])
    accounts.set_password(user.name, user.password_hash or "*")
    accounts.changed = True
    if not user.no_create_home and not user.system and tx.lstat(home) is None:
        tx.make_directories(home, 0o700, uid, gid)
        skel = Path("/etc/skel")
        for name in tx.listdir(str(skel)):
            item = f"{skel}/{name}"
            kind = tx.lstat(item)
            if kind is not None and kind.kind == "file" and kind.nlink == 1:
                tx.write_file(f"{home.rstrip('/')}/{name}", tx.read(item, MAX_READ), 0o644,
                              uid, gid)


def apply_nodes(tx: rootdir.Transaction, plan: Plan, accounts: Accounts) -> list[str]:
    written = []
    for node in plan.nodes:
        try:
            apply_node(tx, node, accounts)
        except (OSError, rootdir.UnsafePath) as error:
            raise ProvisionError(f"{node.where}: {node.path}: {describe(error)}") from None
        written.append(node.path)
    return written


def describe(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return f"{error.strerror} (errno {error.errno})"
    return str(error)


def apply_node(tx: rootdir.Transaction, node: Node, accounts: Accounts) -> None:
    uid, gid = accounts.uid(node.user), accounts.gid(node.group)
    entry = tx.lstat(node.path)
    if node.kind == "directory":
        if entry is not None and entry.kind == "directory":
            tx.set_owner_mode(node.path, uid, gid, node.mode)
        else:
            if entry is not None:
                tx.remove(node.path)
            tx.make_directories(node.path, 0o755 if node.mode is None else node.mode,
                                uid or 0, gid or 0)
        log(f"directory {node.path}")
    elif node.kind == "file":
        apply_file(tx, node, entry, uid, gid)
    elif node.kind == "link":
        if entry is not None and entry.kind == "link" and tx.readlink(node.path) == node.target:
            return
        tx.symlink(node.path, node.target, uid or 0, gid or 0)
        log(f"link {node.path} -> {common.escape(node.target)}")
    else:
        tx.hardlink(node.path, node.target)
        log(f"hard link {node.path} -> {node.target}")


def apply_file(tx: rootdir.Transaction, node: Node, entry: rootdir.Entry | None,
               uid: int | None, gid: int | None) -> None:
    """A file's contents, owner and mode. Unset owner or mode keep an existing regular file's;
    a file that already has the contents only gets its owner and mode."""
    existing = entry is not None and entry.kind == "file"
    if existing and node.keep_contents:
        tx.set_owner_mode(node.path, uid, gid, node.mode)
        log(f"file {node.path} (owner and mode)")
        return
    current = tx.read(node.path, MAX_READ) if existing and (
        node.append or (entry is not None and entry.size == len(node.data))) else None
    data = (current or b"") + node.data if node.append else node.data
    if current is not None and current == data:
        tx.set_owner_mode(node.path, uid, gid, node.mode)
        log(f"file {node.path} (unchanged)")
        return
    keep = entry if existing else None
    mode = node.mode if node.mode is not None else keep.mode if keep else 0o644
    tx.write_file(node.path, data, mode, uid if uid is not None else keep.uid if keep else 0,
                  gid if gid is not None else keep.gid if keep else 0)
    log(f"file {node.path} ({len(data)} bytes)")


def apply_ssh_keys(tx: rootdir.Transaction, plan: Plan, accounts: Accounts) -> list[str]:
    """~/.ssh/authorized_keys of each user with keys: the keys of the config and of the
    metadata, nothing else (in every-boot mode the source is the truth)."""
    written = []
    for name, keys in sorted(plan.ssh_keys.items()):
        entry = accounts.user(name)
        if entry is None:
            raise ProvisionError(f"SSH keys for {name}, who does not exist")
        uid, gid, home = int(entry[2]), int(entry[3]), entry[5].rstrip("/")
        ssh, authorized = f"{home}/.ssh", f"{home}/.ssh/authorized_keys"
        try:
            found = tx.lstat(ssh)
            if found is None:
                tx.make_directories(ssh, 0o700, uid, gid)
            else:
                tx.set_owner_mode(ssh, uid, gid, None)
            unique = list(dict.fromkeys(k.strip() for k in keys if k.strip()))
            tx.write_file(authorized, "".join(k + "\n" for k in unique).encode(), 0o600, uid,
                          gid)
        except (OSError, rootdir.UnsafePath) as error:
            raise ProvisionError(f"SSH keys of {name}: {describe(error)}") from None
        written.append(authorized)
        log(f"installed {len(unique)} SSH key(s) for {name}")
    return written


def apply_channel(tx: rootdir.Transaction, channel: str) -> None:
    try:
        current: Any = json.loads(tx.read(UPDATE_OVERRIDE, MAX_READ))
    except FileNotFoundError:
        current = {}
    except ValueError:
        raise ProvisionError(f"{UPDATE_OVERRIDE} is not JSON; fix or remove it") from None
    if not isinstance(current, dict):
        raise ProvisionError(f"{UPDATE_OVERRIDE} is not a JSON object; fix or remove it")
    if current.get("channel") != channel:
        current["channel"] = channel
        tx.write_file(UPDATE_OVERRIDE, (json.dumps(current, indent=2) + "\n").encode(), 0o644,
                      0, 0)
        log(f"update channel: {common.escape(channel)}")


def remove_stale(tx: rootdir.Transaction, before: Iterable[str], now: set[str]) -> None:
    """Every-boot mode: what an earlier boot wrote and the config no longer names."""
    for path in sorted(set(before) - now, key=len, reverse=True):
        try:
            entry = tx.lstat(path)
            removed = entry is not None and tx.remove(path)
        except rootdir.UnsafePath as error:
            log(f"kept {path}: {error}", common.WARNING)
            continue
        if removed:
            log(f"removed {path} (no longer in the configuration)")
        elif entry is not None:
            log(f"kept {path}: no longer in the configuration but not empty", common.WARNING)


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


def write_tmpfiles_overrides(tx: rootdir.Transaction, root: Path, provisioned: Iterable[str]
                             ) -> None:
    """systemd-tmpfiles applies the image's lines at every boot, and an `L+` line (how /etc
    entries of the image link into its factory tree, /etc/hostname among them) replaces a
    provisioned file. A line with `+` cannot be outvoted by another file's line for the same
    path, so the image's file itself is overridden: /etc/tmpfiles.d/<name> is the booted
    image's /usr/lib/tmpfiles.d/<name> with the provisioned paths' lines made harmless
    (keep_provisioned). Rewritten at every boot before switch-root, so a new release's lines
    apply; overrides that are no longer needed are removed, and an admin's own file of the
    same name is left alone."""
    paths = set(provisioned)
    image = root / "usr/lib/tmpfiles.d"  # the verity-protected image: read as it is
    wanted: dict[str, str] = {}
    for conf in sorted(image.glob("*.conf")) if image.is_dir() else []:
        lines = conf.read_text().splitlines()
        kept = [k for line in lines if (k := keep_provisioned(line, paths)) is not None]
        if kept != lines:
            wanted[conf.name] = (f"{TMPFILES_MARK}/usr/lib/tmpfiles.d/{conf.name} without "
                                 "replacing what provisioning wrote\n"
                                 + "".join(k + "\n" for k in kept))
    existing = {name: ours_tmpfiles(tx, f"/etc/tmpfiles.d/{name}")
                for name in tx.listdir("/etc/tmpfiles.d") if name.endswith(".conf")}
    for name, text in existing.items():
        if text is not None and name not in wanted:
            tx.remove(f"/etc/tmpfiles.d/{name}")
    for name, text in wanted.items():
        if name in existing and existing[name] is None:
            log(f"/etc/tmpfiles.d/{name} is the admin's: the image's lines in it may replace "
                "provisioned files", common.WARNING)
            continue
        if existing.get(name) != text:
            tx.write_file(f"/etc/tmpfiles.d/{name}", text.encode(), 0o644, 0, 0)


def ours_tmpfiles(tx: rootdir.Transaction, path: str) -> str | None:
    """The text of a tmpfiles.d override provisioning wrote; None for anything else."""
    try:
        text = tx.read(path, MAX_READ).decode("utf-8", "replace")
    except (OSError, rootdir.UnsafePath):
        return None
    return text if text.startswith(TMPFILES_MARK) else None


def attributes_text(attributes: dict[str, str]) -> str:
    """The attributes as an EnvironmentFile; a value with a control character (a line break
    would start another variable) is left out, and the journal says so."""
    lines = []
    for key, value in sorted(attributes.items()):
        if CONTROL.search(value) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            log(f"left out the attribute {common.escape(key)!r}: a control character or a bad "
                "name", common.WARNING)
            continue
        lines.append(f"{key}={metadata.quote_env(value)}\n")
    return "".join(lines)


def write_state(tx: rootdir.Transaction, state: dict[str, Any]) -> None:
    tx.write_file(f"{STATE_DIR}/state.json",
                  (json.dumps(state, indent=2, sort_keys=True) + "\n").encode(), 0o600, 0, 0)


def apply(root: Path, plan: Plan, settings: Settings, state: dict[str, Any],
          metadata_file: Path,
          before_change: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Write the plan into `root`, all or nothing: any failure rolls every change back and
    raises ProvisionError. Returns the new state (already written)."""
    ours = set(state.get("written", [])) if state.get("source") == plan.source else set()
    new_state: dict[str, Any] = {}
    try:
        with rootdir.Transaction(root) as tx:
            if before_change is not None:
                tx.before_change = before_change
            accounts = Accounts.read(tx)
            check_plan(tx, plan, ours, accounts)
            apply_accounts(tx, plan, accounts, settings)
            written = apply_nodes(tx, plan, accounts)
            written += apply_ssh_keys(tx, plan, accounts)
            if plan.hostname:
                tx.write_file("/etc/hostname", f"{plan.hostname}\n".encode(), 0o644, 0, 0)
                written.append("/etc/hostname")
                log(f"host name: {plan.hostname}")
            if plan.channel:
                apply_channel(tx, plan.channel)
            if plan.source in settings.every_boot:
                remove_stale(tx, ours, set(written))
            write_tmpfiles_overrides(tx, root, written)
            attributes = attributes_text(plan.attributes)
            tx.write_file(f"{STATE_DIR}/metadata", attributes.encode(), 0o644, 0, 0)
            new_state = {
                "source": plan.source,
                "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "config_sha256": plan.config_sha256, "written": sorted(set(written)),
                "policy": "every-boot" if plan.source in settings.every_boot else "first-boot",
            }
            write_state(tx, new_state)
    except (OSError, rootdir.UnsafePath) as error:
        raise ProvisionError(f"writing the configuration failed: {describe(error)}") from None
    write_run_metadata(metadata_file, attributes.encode())
    return new_state


def write_run_metadata(metadata_file: Path, data: bytes) -> None:
    """/run/metadata/sonix: the initrd's own tmpfs, not the machine's root."""
    metadata_file.parent.mkdir(parents=True, exist_ok=True)
    common.write_atomic(metadata_file, data, 0o644)


# ---- the run -------------------------------------------------------------------------------


def run(root: Path, settings: Settings, env: metadata.Environment,
        metadata_file: Path = METADATA_FILE, fetch: Fetch = http_fetch) -> int:
    try:
        state = load_state(root)
    except ProvisionError as e:
        return failed(settings, str(e), [])
    # The first boot asks every source; later boots only the one that provisioned the machine,
    # and only when its policy is every-boot.
    sources = (list(settings.sources) if not state
               else [state["source"]] if state.get("source") in settings.every_boot else [])
    if not sources:
        return restore_first_boot(root, state, metadata_file)
    try:
        found = metadata.discover(env, sources, settings.timeout)
        if found is None:
            log(f"no configuration found ({', '.join(sources)}): the image boots as it is")
            new_state = state or {"source": None, "written": []}
            new_state["at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
            with rootdir.Transaction(root) as tx:
                write_state(tx, new_state)
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
    except (OSError, rootdir.UnsafePath) as e:
        return failed(settings, f"provisioning failed: {describe(e)}", [])
    log(f"done: {len(new_state['written'])} paths from {found.source} "
        f"({new_state['policy']})")
    return 0


def apply_config(root: Path, config: bytes, *, every_boot: bool, source: str = "file",
                 metadata_file: Path | None = None, fetch: Fetch = http_fetch
                 ) -> dict[str, Any] | None:
    """`sonix provision apply`: the config in `config` applied to the tree at `root` as the
    initrd applies a source's config: first boot, or (`every_boot`) again at every run,
    removing what the config no longer names. None: the tree was provisioned before under the
    first-boot policy, and nothing is done. Raises ignition.ConfigError or ProvisionError;
    then nothing was written."""
    settings = Settings(sources=(source,), every_boot=frozenset({source} if every_boot else ()),
                        timeout=metadata.DEFAULT_TIMEOUT, on_error="emergency", user="admin",
                        matchbox_url=None)
    state = load_state(root)
    if state and state.get("source") == source and not every_boot:
        return None
    plan = make_plan(metadata.Found(source, config), settings, fetch)
    return apply(root, plan, settings, state,
                 metadata_file or root / str(METADATA_FILE).lstrip("/"))


def restore_first_boot(root: Path, state: dict[str, Any], metadata_file: Path) -> int:
    """A later boot of a first-boot machine: the attributes of the provisioning boot back in
    /run, the tmpfiles.d overrides for the booted image."""
    with rootdir.Transaction(root) as tx:
        try:
            saved = tx.read(f"{STATE_DIR}/metadata", MAX_READ)
        except (FileNotFoundError, rootdir.UnsafePath):
            saved = None
        write_tmpfiles_overrides(tx, root, state.get("written", []))
    if saved is not None:
        write_run_metadata(metadata_file, saved)
    log(f"provisioned on {state.get('at')} from {state.get('source') or 'nothing'}; "
        "first-boot policy: nothing to do")
    return 0


def failed(settings: Settings, message: str, problems: Sequence[str]) -> int:
    log(f"{message}; nothing of it was written", common.ERR)
    for problem in problems:
        log(f"  {problem}", common.ERR)
    if settings.on_error == "emergency":
        log("stopping the boot (provisioning.onError = \"emergency\")", 2)
        return 1
    log("booting the image as it is (provisioning.onError = \"continue\")", common.WARNING)
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
