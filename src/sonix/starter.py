"""`sonix init DIR`: a starter configuration repository for one machine.

The files are written into a temporary directory beside DIR and renamed into place, so DIR is
either complete or not there at all. The host file imports sonix's modules by their stable
names (`<sonix/...>`, which every Nix call of the CLI resolves to the checkout), so the
repository needs no copy of sonix and no set-up.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from sonix import ui

HOST_FILE = "configuration.nix"

# The password "sonix" (`openssl passwd -6 -salt sonixexample sonix`), as in
# examples/minimal.nix: for trying the machine in a VM; the README says to replace it.
TRIAL_PASSWORD_HASH = (
    "$6$sonixexample$EX6DFOghfeWxi9Ltt06Am9gn6oM5rdfTNPrSRVkGy5h.tUzFY9pUzqS93WUwwV.BjURsRhz42EfNZgXRoGYxz0"
)

CONFIGURATION = """\
# The machine "{hostname}". Build it with `sonix build configuration.nix`, try it with
# `sonix run configuration.nix` (README.md). sonix's modules are imported by their stable
# names, <sonix/...>, which the sonix command resolves to its checkout.
{{ ... }}:
{{
  imports = [
    # On-demand modules: import the ones this machine uses (docs/modules.md lists them).
    # <sonix/modules/services/openssh.nix>
    # <sonix/modules/services/updates.nix>
  ];

  networking.hostName = "{hostname}";

  # Administration. There is no sudo: become root with `su -` (util-linux) on the console,
  # or log in as root with an SSH key (docs/modules.md, "Becoming root").
  users.users.root = {{
    # The password "sonix", for trying the machine in a VM. Replace it
    # (`mkpasswd -m yescrypt`), or lock it with "!" once root has SSH keys.
    hashedPassword = "{password}";
    # With openssh.nix imported (root logins are by key only):
    # openssh.authorizedKeys.keys = [ "ssh-ed25519 AAAA... you@laptop" ];
  }};

  users.users.admin = {{
    isNormalUser = true;
    uid = 1000;
    description = "Administrator";
    extraGroups = [ "systemd-journal" ];
    # The password "sonix" as well; replace it before the machine leaves the VM.
    hashedPassword = "{password}";
  }};

  services.journald.systemMaxUse = "100M";

  # Updates from a channel (`sonix release` publishes one; docs/updates.md): uncomment the
  # updates.nix import above, run `sonix keygen` and copy the trusted.gpg it prints to
  # keys/trusted.gpg (the public key only; the private key stays with the release machine).
  # updates = {{
  #   enable = true;
  #   channel = "https://updates.example.com/{hostname}/";
  #   trustedKeys = [ ./keys/trusted.gpg ];
  # }};
}}
"""

README = """\
# {hostname}

The configuration of a sonix machine, written by `sonix init`.
The `sonix` command below is the one in your sonix checkout (`/path/to/sonix/sonix`); it
resolves `<sonix/...>` in `configuration.nix` to that checkout.

## Build, try, deploy

    sonix build configuration.nix    # disk image + release artifacts; prints their directory
    sonix run configuration.nix      # boots it in QEMU on the serial console

Log in as `admin` (password `sonix`); `su -` with root's password (also `sonix`) gives a
root shell. Replace both password hashes (`mkpasswd -m yescrypt`) before the image runs
anywhere but a VM, and prefer SSH keys for root: import `<sonix/modules/services/openssh.nix>`
and set `users.users.root.openssh.authorizedKeys.keys`, then lock root's password with `"!"`.

Write the built `disk.raw` to the machine's disk (or upload it as a cloud image). Later
versions reach the machine through an update channel:
`sonix release configuration.nix --channel DIR` builds and signs a release into DIR, which
any web server can serve, and the machine's `updates` module (see `configuration.nix`)
fetches it.

## Keys

- Channel signing key: `sonix keygen` creates it (by default in the sonix checkout's
  `.sonix/keys/channel`) and prints the path of its public keyring `trusted.gpg`. Copy that
  file to `keys/trusted.gpg` here and commit it: machines check releases with it.
- Private keys (the channel's GNUPGHOME, Secure Boot keys from `sonix keygen --secure-boot`)
  never belong in this repository; `.gitignore` keeps the usual names out.
"""

GITIGNORE = """\
# sonix's working state and build results
.sonix/
result
result-*
*.raw
*.qcow2
# Private keys: only public keyrings (keys/trusted.gpg) belong here.
*.key
*.pem
private-keys-v1.d/
secring.*
pubring.kbx*
trustdb.gpg
"""


def hostname_for(directory: Path) -> str:
    """A host name (RFC 1123 label) from the directory's name: lowercase letters, digits and
    dashes, at most 63 characters; "sonix" when nothing is left."""
    label = re.sub(r"[^a-z0-9-]+", "-", directory.name.lower()).strip("-")[:63].strip("-")
    return label or "sonix"


def files(hostname: str) -> dict[str, str]:
    """The starter repository's files, by path relative to its root."""
    return {
        HOST_FILE: CONFIGURATION.format(hostname=hostname, password=TRIAL_PASSWORD_HASH),
        "README.md": README.format(hostname=hostname),
        ".gitignore": GITIGNORE,
        "keys/.gitkeep": "",
    }


def write(directory: Path, hostname: str | None = None) -> Path:
    """Write the starter repository into DIR (absent or empty), atomically. Returns its host
    file."""
    directory = directory.absolute()
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise ui.die(
            f"{directory} is not empty: nothing written",
            hint="give sonix init a new or empty directory",
        )
    directory.parent.mkdir(parents=True, exist_ok=True)
    name = hostname or hostname_for(directory)
    temp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        for relative, text in files(name).items():
            path = temp / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        temp.chmod(0o755)
        # rename(2) replaces an empty directory and fails on a non-empty one (a race with
        # someone else writing there): DIR is complete or untouched.
        try:
            os.rename(temp, directory)
        except OSError as error:
            raise ui.die(f"cannot create {directory}: {error.strerror}: nothing written") from error
    finally:
        if temp.exists():
            shutil.rmtree(temp)
    return directory / HOST_FILE
