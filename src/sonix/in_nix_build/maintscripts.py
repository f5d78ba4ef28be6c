"""What Debian's maintainer scripts would have done to an unpacked, merged tree.

sonix never runs maintainer scripts (they expect a running dpkg and a live system). This
script does their lasting effects, deterministically, on a tree that pkgs/default.nix merged:

1. `passwd_group`: /etc/passwd and /etc/group from base-passwd's masters (base-passwd's
   postinst does this with update-passwd on a new system);
2. `alternatives`: the `update-alternatives --install` calls in postinst scripts, highest
   priority wins, as plain relative symlinks (no /etc/alternatives indirection);
3. `ldconfig`: /etc/ld.so.cache (libc-bin's trigger);
4. `depmod`: modules.dep & co. for every kernel under /usr/lib/modules (the kernel's postinst);
5. `sysusers`: the users and groups of /usr/lib/sysusers.d (systemd's trigger), which also
   writes /etc/shadow and /etc/gshadow;
6. `dpkg_status`: /var/lib/dpkg/status, what dpkg would have recorded as installed;
7. `pam_auth_update`: /etc/pam.d/common-{auth,account,password,session,...} from the profiles
   in /usr/share/pam-configs (libpam-runtime's postinst runs `pam-auth-update --package`;
   without these files every PAM service, login included, aborts);
8. `base_files`: /etc/profile and /etc/motd from /usr/share/base-files (base-files' postinst;
   without /etc/profile a login shell has no PATH for users and no prompt);
9. `ca_certificates`: /etc/ca-certificates.conf and the bundle /etc/ssl/certs/ca-certificates.crt
   of every certificate in /usr/share/ca-certificates (ca-certificates' postinst runs
   update-ca-certificates with all certificates trusted, debconf's default; Go programs such
   as podman, GnuTLS and curl read the bundle). The per-certificate links and OpenSSL's hash
   links are not made.

It runs inside the Nix build with the locked tools' python3 (bubblewrap, see `runInTools` in
pkgs/default.nix) and uses only the standard library. Because the sonix package is not there,
it starts its few commands with its own small `_run` (unit tests mock it) instead of
sonix.process.run.

Usage: python3 maintscripts.py ROOT [PACKAGE_DIR ...]
  ROOT is the writable merged tree; PACKAGE_DIRs are the unpacked packages (their
  nix-support/debian/postinst scripts are read for alternatives).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path


def _run(argv: Sequence[str]) -> None:
    print("+ " + shlex.join(argv), file=sys.stderr, flush=True)
    subprocess.run(argv, check=True, stdin=subprocess.DEVNULL)


def _inside(root: Path, path: str) -> Path:
    return root / path.lstrip("/")


# ---------------------------------------------------------------------------------------------
# 1. passwd and group


def passwd_group(root: Path) -> bool:
    masters = root / "usr/share/base-passwd"
    if not (masters / "passwd.master").is_file():
        return False
    (root / "etc").mkdir(exist_ok=True)
    for name in ("passwd", "group"):
        target = root / "etc" / name
        target.unlink(missing_ok=True)
        shutil.copyfile(masters / f"{name}.master", target)
        target.chmod(0o644)
    return True


# ---------------------------------------------------------------------------------------------
# 2. alternatives


@dataclass(frozen=True)
class Alternative:
    """One `update-alternatives --install` call: a group of links with one priority."""

    name: str
    priority: int
    links: tuple[tuple[str, str], ...]  # (link, target) pairs, the master first
    package: str = ""


def _logical_lines(script: str) -> list[str]:
    lines: list[str] = []
    current = ""
    for raw in script.splitlines():
        line = raw.rstrip()
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        lines.append(current + line)
        current = ""
    if current:
        lines.append(current)
    return lines


def parse_alternatives(script: str, package: str = "") -> list[Alternative]:
    """The `update-alternatives --install LINK NAME PATH PRIORITY [--slave LINK NAME PATH]...`
    calls of a maintainer script. Words that shell expansion would change (`$`, backquotes)
    end the call: the links before them are kept."""
    found: list[Alternative] = []
    for line in _logical_lines(script):
        if "update-alternatives" not in line or "--install" not in line:
            continue
        try:
            words = shlex.split(line[line.index("update-alternatives") :], comments=True)
        except ValueError:
            continue
        usable: list[str] = []
        for word in words[1:]:
            if word in ("||", "&&", ";", "|") or "$" in word or "`" in word or word.endswith(";"):
                if word.endswith(";") and "$" not in word:
                    usable.append(word[:-1])
                break
            usable.append(word)
        if not usable or usable[0] != "--install" or len(usable) < 5:
            continue
        link, name, path, priority = usable[1:5]
        try:
            prio = int(priority)
        except ValueError:
            continue
        links = [(link, path)]
        rest = usable[5:]
        while len(rest) >= 4 and rest[0] == "--slave":
            links.append((rest[1], rest[3]))
            rest = rest[4:]
        found.append(Alternative(name, prio, tuple(links), package))
    return found


def choose_alternatives(candidates: Sequence[Alternative]) -> dict[str, Alternative]:
    """Per alternative name, the highest priority (ties: the first, i.e. by package name)."""
    chosen: dict[str, Alternative] = {}
    for alt in candidates:
        if alt.name not in chosen or alt.priority > chosen[alt.name].priority:
            chosen[alt.name] = alt
    return chosen


def alternatives(root: Path, package_dirs: Sequence[Path]) -> list[tuple[str, str]]:
    """Create the chosen alternatives' links; returns the (link, target) pairs made."""
    candidates: list[Alternative] = []
    for pkg in sorted(package_dirs, key=lambda p: p.name.split("-", 1)[-1]):
        postinst = pkg / "nix-support" / "debian" / "postinst"
        if postinst.is_file():
            candidates += parse_alternatives(postinst.read_text(errors="replace"), pkg.name)
    made: list[tuple[str, str]] = []
    for name in sorted(chosen := choose_alternatives(candidates)):
        for link, target in chosen[name].links:
            link_path = _inside(root, link)
            target_path = _inside(root, target)
            if not (target_path.exists() or target_path.is_symlink()):
                continue  # update-alternatives skips slaves whose target is missing too
            if link_path.exists() and not link_path.is_symlink():
                continue  # a real file (shipped by a package) wins
            link_path.parent.mkdir(parents=True, exist_ok=True)
            link_path.unlink(missing_ok=True)
            relative = os.path.relpath(_canonical(root, target), _canonical(root, link).parent)
            link_path.symlink_to(relative)
            made.append((link, target))
    return made


def _canonical(root: Path, path: str) -> Path:
    """path inside the tree with the usr-merge aliases (/bin → /usr/bin …) resolved."""
    parts = Path(path.lstrip("/")).parts
    if parts and parts[0] in ("bin", "sbin", "lib", "lib64"):
        parts = ("usr", *parts)
    return Path("/", *parts)


# ---------------------------------------------------------------------------------------------
# 3.-5. commands from the locked tools


def ldconfig(root: Path) -> bool:
    if not any((root / "usr/lib").glob("*/libc.so.6")):
        return False
    # -X: no soname links (the packages ship them); -r: chroot into the tree.
    _run(["ldconfig", "-X", "-r", str(root)])
    # aux-cache records inodes and mtimes of this build: not reproducible, not needed.
    shutil.rmtree(root / "var/cache/ldconfig", ignore_errors=True)
    return True


def kernels(root: Path) -> list[str]:
    modules = root / "usr/lib/modules"
    if not modules.is_dir():
        return []
    return sorted(d.name for d in modules.iterdir() if (d / "kernel").is_dir())


def depmod(root: Path) -> list[str]:
    done = kernels(root)
    for version in done:
        # --moduledir: kmod's default is /lib/modules, which only exists through base-files'
        # usr-merge symlink; a tree without base-files still has /usr/lib/modules.
        _run(["depmod", "--all", "--basedir", str(root), "--moduledir", "/usr/lib/modules",
              version])
    return done


def sysusers(root: Path) -> bool:
    if not (root / "usr/lib/sysusers.d").is_dir():
        return False
    _run(["systemd-sysusers", f"--root={root}"])
    for backup in ("passwd-", "group-", "shadow-", "gshadow-", ".pwd.lock"):
        (root / "etc" / backup).unlink(missing_ok=True)
    return True


def dpkg_status(root: Path, package_dirs: Sequence[Path]) -> int:
    """/var/lib/dpkg/status from the packages' control files, so that `dpkg -l` and security
    scanners see what the tree contains. Returns the number of packages."""
    stanzas: dict[str, str] = {}
    for pkg in package_dirs:
        control = pkg / "nix-support" / "debian" / "control"
        if not control.is_file():
            continue
        lines = control.read_text().rstrip("\n").splitlines()
        name = lines[0].partition(":")[2].strip()
        stanzas[name] = "\n".join([lines[0], "Status: install ok installed", *lines[1:]])
    if not stanzas:
        return 0
    status = root / "var/lib/dpkg/status"
    status.parent.mkdir(parents=True, exist_ok=True)
    status.unlink(missing_ok=True)
    status.write_text("".join(f"{stanzas[n]}\n\n" for n in sorted(stanzas)))
    return len(stanzas)


def parse_pam_profile(text: str) -> dict[str, str]:
    """A /usr/share/pam-configs profile: `Field: value` lines, module lines indented below
    their field. Session-noninteractive is derived from Session unless the profile says
    `Session-Interactive-Only: yes`, as pam-auth-update does."""
    profile: dict[str, str] = {}
    field = ""
    for line in text.splitlines():
        if line[:1].isspace() or not line.strip():
            if field and line.strip():
                profile[field] = (profile[field] + "\n" + line.strip()).strip("\n")
            continue
        name, _, value = line.partition(":")
        field = name.strip().removesuffix("-Final")
        profile[field] = value.strip()
    if profile.get("Session-Interactive-Only") != "yes":
        for suffix in ("-Type", "", "-Initial"):
            if f"Session{suffix}" in profile:
                profile[f"Session-noninteractive{suffix}"] = profile[f"Session{suffix}"]
    return profile


def pam_block(
    profiles: Sequence[dict[str, str]], kind: str, block: str, pam_type: str
) -> list[str]:
    """The lines of one block ("Primary" or "Additional") of a common-* file. A profile's
    first module in the stack uses its `-Initial` lines; `end` in a control field becomes
    the number of lines left in the block, so that success jumps past the rest of it."""
    chosen = [p for p in profiles if p.get(f"{kind}-Type") == block]
    lines: list[str] = []
    for position, profile in enumerate(chosen):
        text = profile.get(f"{kind}-Initial") if position == 0 else None
        lines += (text or profile.get(kind, "")).split("\n")
    lines = [line for line in lines if line.strip()]
    if block == "Primary" and not lines:
        return [f"{pam_type}\t[default=1]\t\t\tpam_permit.so"]
    count = len(lines) - (1 if block == "Additional" else 0)
    out = []
    for line in lines:
        # CONTROL MODULE [OPTIONS]; CONTROL is a word or a bracketed [value=action ...] list.
        if line.startswith("["):
            control, rest = line[: line.index("]") + 1], line[line.index("]") + 1:].split()
        else:
            control, *rest = line.split()
        module, options = rest[0], rest[1:]
        control = control.replace("end", str(count))
        out.append(f"{pam_type}\t{control}\t{' '.join([module, *options])}")
        count -= 1
    return out


def pam_auth_update(root: Path) -> list[str]:
    """/etc/pam.d/common-* from libpam-runtime's templates and the enabled (`Default: yes`)
    profiles, highest `Priority` first. Returns the files written."""
    templates = root / "usr/share/pam"
    configs = root / "usr/share/pam-configs"
    if not templates.is_dir() or not configs.is_dir():
        return []
    profiles = [parse_pam_profile(p.read_text()) for p in sorted(configs.iterdir()) if p.is_file()]
    enabled = sorted((p for p in profiles if p.get("Default") == "yes"),
                     key=lambda p: (-int(p.get("Priority", "0")), p.get("Name", "")))
    written = []
    for template in sorted(templates.glob("common-*")):
        if template.suffix == ".md5sums":
            continue
        kind_name = template.name.removeprefix("common-")  # auth, session-noninteractive, ...
        kind = kind_name[:1].upper() + kind_name[1:]
        pam_type = kind_name.removesuffix("-noninteractive")
        out: list[str] = []
        for line in template.read_text().splitlines():
            if line.startswith("$") and line.endswith(("_primary", "_additional")):
                block = "Primary" if line.endswith("_primary") else "Additional"
                out += pam_block(enabled, kind, block, pam_type)
            else:
                out.append(line)
        target = root / "etc/pam.d" / template.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("\n".join(out) + "\n")
        written.append(template.name)
    return written


def base_files(root: Path) -> list[str]:
    """The files base-files' postinst installs from its defaults when they are missing."""
    written = []
    for default, target in (("profile", "etc/profile"), ("motd", "etc/motd")):
        source, dest = root / "usr/share/base-files" / default, root / target
        if source.is_file() and not dest.exists():
            shutil.copyfile(source, dest)
            written.append(f"/{target}")
    return written


def ca_certificates(root: Path) -> list[str]:
    """What update-ca-certificates makes of a fresh install: every certificate trusted (the
    list in /etc/ca-certificates.conf, sorted) and their PEM texts in one bundle."""
    store = root / "usr/share/ca-certificates"
    if not store.is_dir():
        return []
    certificates = sorted(p.relative_to(store).as_posix() for p in store.rglob("*.crt"))
    conf = root / "etc/ca-certificates.conf"
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text("# Written by sonix as ca-certificates' postinst would: all trusted.\n"
                    + "".join(f"{c}\n" for c in certificates))
    bundle = root / "etc/ssl/certs/ca-certificates.crt"
    bundle.parent.mkdir(parents=True, exist_ok=True)
    texts = [(store / c).read_text() for c in certificates]
    bundle.write_text("".join(t if t.endswith("\n") else t + "\n" for t in texts))
    return [f"{len(certificates)} certificates in /etc/ssl/certs/ca-certificates.crt"]


def special_modes(root: Path) -> list[str]:
    """Modes that the Nix store cannot keep, for files this script made (`path mode uid gid`,
    the format of the packages' nix-support/special-modes)."""
    lines = []
    group = root / "etc/group"
    shadow_gid = "0"
    if group.is_file():
        for entry in group.read_text().splitlines():
            fields = entry.split(":")
            if fields[0] == "shadow" and len(fields) > 2:
                shadow_gid = fields[2]
    for name in ("shadow", "gshadow"):
        if (root / "etc" / name).is_file():
            lines.append(f"/etc/{name} 0640 0 {shadow_gid}")
    return lines


def configure(root: Path, package_dirs: Sequence[Path]) -> None:
    steps: list[tuple[str, Callable[[], object]]] = [
        ("passwd and group from base-passwd", lambda: passwd_group(root)),
        ("alternatives", lambda: alternatives(root, package_dirs)),
        ("ld.so.cache", lambda: ldconfig(root)),
        ("depmod", lambda: depmod(root)),
        ("sysusers", lambda: sysusers(root)),
        ("dpkg status", lambda: dpkg_status(root, package_dirs)),
        ("pam-auth-update", lambda: pam_auth_update(root)),
        ("base-files defaults", lambda: base_files(root)),
        ("ca-certificates bundle", lambda: ca_certificates(root)),
    ]
    for title, step in steps:
        result = step()
        if isinstance(result, list):
            done = ", ".join(map(str, result)) if len(result) <= 3 else f"{len(result)} made"
        elif isinstance(result, int) and not isinstance(result, bool):
            done = f"{result} packages"
        else:
            done = "done" if result else "nothing to do"
        print(f"‣ {title}: {done if result else 'nothing to do'}", file=sys.stderr, flush=True)
    modes = special_modes(root)
    if modes:
        manifest = root / "nix-support" / "special-modes"
        manifest.parent.mkdir(exist_ok=True)
        old = manifest.read_text().splitlines() if manifest.is_file() else []
        manifest.write_text("".join(f"{line}\n" for line in sorted({*old, *modes})))


def main(argv: Sequence[str]) -> int:
    if len(argv) < 1:
        print(__doc__, file=sys.stderr)
        return 2
    configure(Path(argv[0]), [Path(p) for p in argv[1:]])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
