"""The core modules: small configurations evaluated through eval-config.nix, checked for the
files they put into /usr and the initrd (system.buildManifest) and for their errors.

Packages come from a fake `pkgs` (tests/unit/fixtures/core-modules/fake-pkgs.nix): every locked
package as a stand-in derivation, so nothing is fetched or built.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sonix import nix, paths, ui

FAKE_PKGS = Path(__file__).parent / "fixtures" / "core-modules" / "fake-pkgs.nix"
EXAMPLES = paths.source_root() / "examples"


def evaluate(module: str, attr: str = "system.buildManifest") -> Any:
    """`attr` of the checked configuration (assertions hold) made of the core and `module`."""
    root = paths.source_root()
    expr = (
        f"(import {root}/eval-config.nix {{ modules = [ ({module}) ];"
        f" pkgs = import {FAKE_PKGS}; }}).checked.{attr}"
    )
    return nix.eval_expr_json(expr)


def usr(module: str = "{ }") -> dict[str, Any]:
    files: dict[str, Any] = evaluate(module, "system.buildManifest.usrFiles")
    return files


def initrd(module: str = "{ }") -> dict[str, Any]:
    files: dict[str, Any] = evaluate(module, "system.buildManifest.initrdUsrFiles")
    return files


def text(files: dict[str, Any], path: str) -> str:
    entry = files[path]
    assert entry["kind"] == "text", entry
    value: str = entry["value"]
    return value


def link(files: dict[str, Any], path: str) -> str:
    entry = files[path]
    assert entry["kind"] == "symlink", entry
    value: str = entry["value"]
    return value


def package_name(out_path: str) -> str:
    """The name of a fake package from its store path (derivations become their outPath in JSON)."""
    return out_path.rsplit("/", 1)[1].split("-", 1)[1]


def error_of(module: str, attr: str = "system.buildManifest") -> str:
    with pytest.raises(ui.SonixError) as error:
        evaluate(module, attr)
    return str(error.value)


def unit_texts(files: dict[str, Any]) -> dict[str, str]:
    return {
        path: entry["value"]
        for path, entry in files.items()
        if path.startswith("lib/systemd/system/") and entry["kind"] == "text"
    }


# ---- units ------------------------------------------------------------------------------

SERVICE = """{ ... }: {
  systemd.services.hello = {
    description = "Say hello";
    documentation = [ "man:hello(1)" ];
    after = [ "network-online.target" ];
    wants = [ "network-online.target" ];
    requires = [ "var-lib-hello.mount" ];
    unitConfig.ConditionPathExists = "!/run/hello";
    environment = { GREETING = "hi \\"there\\" 100%"; UNSET = null; COUNT = 3; };
    serviceConfig = {
      Type = "oneshot"; RemainAfterExit = true; ExecStartPost = [ "/usr/bin/true" ];
    };
    preStart = "mkdir -p /run/hello";
    script = "echo $GREETING > /run/hello/out";
  };
  systemd.targets.multi-user.wants = [
    "hello.service" "serial-getty@ttyS1.service" "container@web.example.org.service"
  ];
}"""


def test_service_unit_text() -> None:
    files = usr(SERVICE)
    assert text(files, "lib/systemd/system/hello.service") == (
        "[Unit]\n"
        "After=network-online.target\n"
        "ConditionPathExists=!/run/hello\n"
        "Description=Say hello\n"
        "Documentation=man:hello(1)\n"
        "\n"
        "[Service]\n"
        'Environment="COUNT=3"\n'
        'Environment="GREETING=hi \\"there\\" 100%%"\n'
        "ExecStart=/usr/lib/sonix/scripts/hello-start\n"
        "ExecStartPost=/usr/bin/true\n"
        "ExecStartPre=/usr/lib/sonix/scripts/hello-pre-start\n"
        "RemainAfterExit=true\n"
        "Type=oneshot\n"
    )
    start = files["lib/sonix/scripts/hello-start"]
    assert start["mode"] == "0755"
    assert start["value"] == "#!/usr/bin/bash\nset -e\necho $GREETING > /run/hello/out"
    assert text(files, "lib/sonix/scripts/hello-pre-start").endswith("mkdir -p /run/hello")


def test_dependencies_are_wants_and_requires_links() -> None:
    files = usr(SERVICE)
    assert link(files, "lib/systemd/system/multi-user.target.wants/hello.service") == (
        "../hello.service"
    )
    # An instance links to its template.
    assert link(
        files, "lib/systemd/system/multi-user.target.wants/serial-getty@ttyS1.service"
    ) == "../serial-getty@.service"
    assert link(
        files, "lib/systemd/system/multi-user.target.wants/container@web.example.org.service"
    ) == "../container@.service"
    assert link(
        files, "lib/systemd/system/hello.service.wants/network-online.target"
    ) == "../network-online.target"
    assert link(
        files, "lib/systemd/system/hello.service.requires/var-lib-hello.mount"
    ) == "../var-lib-hello.mount"
    # A packaged target that only gets links is not rewritten.
    assert "lib/systemd/system/multi-user.target" not in files
    assert "Wants=" not in text(files, "lib/systemd/system/hello.service")


def test_no_install_section_anywhere() -> None:
    for files in (usr(SERVICE), initrd(SERVICE), usr(example("server.nix"))):
        units = unit_texts(files)
        assert units
        for path, value in units.items():
            assert "[Install]" not in value, path
            assert "WantedBy=" not in value, path


def test_preset_disables_everything_and_base_units_are_linked() -> None:
    files = usr()
    assert "disable *" in text(files, "lib/systemd/system-preset/00-sonix.preset").splitlines()
    assert link(files, "lib/systemd/system/dbus.service") == "dbus-broker.service"
    assert link(files, "lib/systemd/system/getty.target.wants/getty@tty1.service") == (
        "../getty@.service"
    )


def test_disabled_unit_has_no_file_and_is_not_wanted() -> None:
    files = usr(
        """{ ... }: {
          systemd.services.off = { enable = false; script = "true"; };
          systemd.targets.multi-user.wants = [ "off.service" "other.service" ];
        }"""
    )
    assert "lib/systemd/system/off.service" not in files
    assert "lib/sonix/scripts/off-start" not in files
    assert "lib/systemd/system/multi-user.target.wants/off.service" not in files
    assert "lib/systemd/system/multi-user.target.wants/other.service" in files


def test_dropin_changes_a_packaged_unit() -> None:
    files = usr(
        """{ ... }: {
          systemd.services.systemd-networkd = {
            overrideStrategy = "asDropin";
            serviceConfig.Environment = "SYSTEMD_LOG_LEVEL=debug";
          };
        }"""
    )
    assert "lib/systemd/system/systemd-networkd.service" not in files
    assert text(files, "lib/systemd/system/systemd-networkd.service.d/overrides.conf") == (
        "[Service]\nEnvironment=SYSTEMD_LOG_LEVEL=debug\n"
    )


def test_a_new_unit_without_exec_start_is_refused() -> None:
    message = error_of('{ ... }: { systemd.services.systemd-networkd.after = [ "x.service" ]; }')
    assert (
        "`systemd.services.systemd-networkd' writes a new unit file systemd-networkd.service "
        "that sets none of ExecStart=, ExecStop=, SuccessAction=." in message
    )
    assert 'systemd.services.systemd-networkd.overrideStrategy = "asDropin";' in message


def test_script_and_exec_start_together_are_refused() -> None:
    message = error_of(
        '{ ... }: { systemd.services.x = { script = "true"; serviceConfig.ExecStart = "/a"; }; }'
    )
    assert "`systemd.services.x' sets both `script' and `serviceConfig.ExecStart'" in message


def test_unit_names_have_no_suffix() -> None:
    message = error_of('{ ... }: { systemd.services."web.service".script = "true"; }')
    assert (
        "`systemd.services.\"web.service\"': unit names are given without their suffix;"
        in message
    )
    assert "write `systemd.services.web'." in message


def test_wanted_by_is_an_error_that_shows_the_wants_line() -> None:
    message = error_of(
        """{ ... }: {
          systemd.services.nginx = {
            serviceConfig.ExecStart = "/usr/sbin/nginx";
            wantedBy = [ "multi-user.target" ];
          };
          systemd.sockets.api = { listenStreams = [ "8080" ]; requiredBy = [ "app.service" ]; };
          systemd.timers.backup = {
            timerConfig.OnCalendar = "daily"; wantedBy = [ "timers.target" ];
          };
        }"""
    )
    assert "`systemd.services.nginx.wantedBy' is not supported" in message
    assert 'systemd.targets.multi-user.wants = [ "nginx.service" ];' in message
    assert "`systemd.sockets.api.requiredBy' is not supported" in message
    assert 'systemd.services.app.requires = [ "api.socket" ];' in message
    assert 'systemd.targets.timers.wants = [ "backup.timer" ];' in message


def test_wanted_by_in_the_initrd_names_the_initrd_option() -> None:
    message = error_of(
        """{ ... }: {
          boot.initrd.systemd.services.probe = { script = "true"; wantedBy = [ "initrd.target" ]; };
        }"""
    )
    assert 'boot.initrd.systemd.targets.initrd.wants = [ "probe.service" ];' in message


def test_other_unit_kinds() -> None:
    files = usr(
        """{ ... }: {
          systemd.sockets.api = {
            listenStreams = [ "127.0.0.1:8080" "/run/api.sock" ];
            socketConfig.Accept = false;
          };
          systemd.timers.backup.timerConfig = { OnCalendar = "daily"; Persistent = true; };
          systemd.paths.spool.pathConfig.DirectoryNotEmpty = "/var/spool/jobs";
          systemd.slices.batch.sliceConfig.MemoryMax = "2G";
          systemd.targets.app.description = "Application";
          systemd.mounts = [ {
            what = "/dev/disk/by-label/data"; where = "/srv/my data.d"; type = "ext4";
            options = "noatime";
          } ];
          systemd.targets.local-fs.requires = [ "srv-my\\\\x20data.d.mount" ];
        }"""
    )
    assert text(files, "lib/systemd/system/api.socket") == (
        "[Socket]\nAccept=false\nListenStream=127.0.0.1:8080\nListenStream=/run/api.sock\n"
    )
    assert text(files, "lib/systemd/system/backup.timer") == (
        "[Timer]\nOnCalendar=daily\nPersistent=true\n"
    )
    assert text(files, "lib/systemd/system/spool.path") == (
        "[Path]\nDirectoryNotEmpty=/var/spool/jobs\n"
    )
    assert text(files, "lib/systemd/system/batch.slice") == "[Slice]\nMemoryMax=2G\n"
    assert text(files, "lib/systemd/system/app.target") == "[Unit]\nDescription=Application\n"
    mount = "lib/systemd/system/srv-my\\x20data.d.mount"
    assert text(files, mount) == (
        "[Mount]\nOptions=noatime\nType=ext4\nWhat=/dev/disk/by-label/data\n"
        "Where=/srv/my data.d\n"
    )
    assert "lib/systemd/system/local-fs.target.requires/srv-my\\x20data.d.mount" in files


def test_initrd_units_go_into_the_initrd_with_bash_for_scripts() -> None:
    module = """{ ... }: {
      boot.initrd.systemd.services.probe = {
        unitConfig.DefaultDependencies = false;
        serviceConfig.Type = "oneshot";
        script = "echo probe";
      };
      boot.initrd.systemd.targets.initrd.wants = [ "probe.service" ];
    }"""
    files = initrd(module)
    assert "[Service]\nExecStart=/usr/lib/sonix/scripts/probe-start\n" in text(
        files, "lib/systemd/system/probe.service"
    )
    assert "lib/sonix/scripts/probe-start" in files
    assert link(files, "lib/systemd/system/initrd.target.wants/probe.service") == (
        "../probe.service"
    )
    assert "lib/systemd/system/probe.service" not in usr(module)
    assert "/usr/bin/bash" in evaluate(module, "boot.initrd.binaries")


# ---- /etc -------------------------------------------------------------------------------

ETC = """{ ... }: {
  environment.etc."motd".text = "hello\\n";
  environment.etc."app/secret.conf" = { text = "token=1\\n"; mode = "0640"; group = "app"; };
  environment.etc."issue".enable = false;
  environment.etc."issue".text = "not shipped";
}"""


def test_etc_files_go_to_the_factory_tree() -> None:
    files = usr(ETC)
    assert files["share/factory/etc/motd"] == {"kind": "text", "mode": "0644", "value": "hello\n"}
    assert files["share/factory/etc/app/secret.conf"]["mode"] == "0640"
    assert "share/factory/etc/issue" not in files


def test_etc_tmpfiles_lines() -> None:
    lines = text(usr(ETC), "lib/tmpfiles.d/00-sonix-etc.conf").splitlines()
    assert "L+ /etc/motd - - - - /usr/share/factory/etc/motd" in lines
    assert "C /etc/app/secret.conf 0640 root app -" in lines
    assert "z /etc/app/secret.conf 0640 root app -" in lines
    assert "L+ /etc/hostname - - - - /usr/share/factory/etc/hostname" in lines
    assert "L+ /etc/nsswitch.conf - - - - /usr/share/factory/etc/nsswitch.conf" in lines
    assert not any("/etc/issue" in line for line in lines)


def test_nsswitch_uses_systemd_and_can_be_replaced() -> None:
    assert "passwd:         files systemd\n" in text(usr(), "share/factory/etc/nsswitch.conf")
    files = usr('{ ... }: { environment.etc."nsswitch.conf".text = "hosts: files\\n"; }')
    assert text(files, "share/factory/etc/nsswitch.conf") == "hosts: files\n"


def test_etc_errors() -> None:
    message = error_of(
        """{ ... }: {
          environment.etc."a".user = "nobody";
          environment.etc."a".text = "x";
          environment.etc."b" = { };
          environment.etc."c" = { target = "motd"; text = "1"; };
          environment.etc."motd".text = "2";
        }"""
    )
    assert message.count('more than one entry has the target "motd"; keep one.') == 1
    assert 'environment.etc."a" sets an owner (nobody:root) but is a symlink' in message
    assert 'environment.etc."b" must set exactly one of `text` or `source`.' in message


def test_initrd_seeds_etc_on_first_boot() -> None:
    files = initrd()
    unit = text(files, "lib/systemd/system/sonix-etc-seed.service")
    assert "ExecStart=/usr/bin/systemd-sysusers --root=/sysroot\n" in unit
    assert "ExecStart=/usr/bin/systemd-tmpfiles --root=/sysroot --create --prefix=/etc\n" in unit
    assert "ConditionPathExists=!/sysroot/etc/machine-id\n" in unit
    assert "Before=initrd-fs.target\n" in unit
    assert "DefaultDependencies=false\n" in unit
    assert link(files, "lib/systemd/system/initrd-fs.target.wants/sonix-etc-seed.service") == (
        "../sonix-etc-seed.service"
    )
    assert "lib/systemd/system/sonix-etc-seed.service.requires/sysroot.mount" in files
    binaries = evaluate("{ }", "boot.initrd.binaries")
    assert {"/usr/bin/systemd-sysusers", "/usr/bin/systemd-tmpfiles"} <= set(binaries)

    unseeded = initrd("{ ... }: { boot.initrd.seedEtc = false; }")
    assert not any("sonix-etc-seed" in path for path in unseeded)


# ---- users ------------------------------------------------------------------------------

USERS = """{ ... }: {
  users.groups.app = { gid = 2000; members = [ "bob" ]; };
  users.users = {
    bob = { isNormalUser = true; };
    alice = { isNormalUser = true; uid = 1000; extraGroups = [ "sudo" ]; description = "Alice L";
      openssh.authorizedKeys.keys = [ "ssh-ed25519 AAAA1 alice@a" "ssh-ed25519 AAAA2 alice@b" ];
      hashedPassword = "$6$salt$hash"; };
    carol = { isNormalUser = true; };
    app = { isSystemUser = true; group = "app"; home = "/var/lib/app"; createHome = true; };
    svc = { isSystemUser = true; };
    root.hashedPassword = "$6$root$hash";
  };
}"""


def test_sysusers_lines() -> None:
    lines = text(usr(USERS), "lib/sysusers.d/sonix.conf").splitlines()
    assert lines[1:] == [
        "g app 2000",
        'u alice 1000:users "Alice L" /home/alice /usr/bin/bash',
        "u app -:app - /var/lib/app /usr/sbin/nologin",
        # Normal users without a uid: the next free ones from 1000, by name.
        "u bob 1001:users - /home/bob /usr/bin/bash",
        "u carol 1002:users - /home/carol /usr/bin/bash",
        "u svc - - / /usr/sbin/nologin",
        "m alice sudo",
        "m bob app",
    ]


def test_homes_keys_and_passwords() -> None:
    files = usr(USERS)
    rules = text(files, "lib/tmpfiles.d/50-sonix.conf").splitlines()
    assert "d /home/alice 0700 alice users -" in rules
    assert "d /var/lib/app 0700 app app -" in rules
    assert not any(" svc " in rule for rule in rules)
    assert text(files, "share/factory/etc/ssh/authorized_keys.d/alice") == (
        "ssh-ed25519 AAAA1 alice@a\nssh-ed25519 AAAA2 alice@b\n"
    )
    tmpfiles = text(files, "lib/tmpfiles.d/00-sonix-etc.conf")
    assert "L+ /etc/ssh/authorized_keys.d/alice - - - - " in tmpfiles
    credentials = [
        "SetCredential=passwd.hashed-password.alice:$6$salt$hash",
        "SetCredential=passwd.hashed-password.root:$6$root$hash",
    ]
    dropin = text(files, "lib/systemd/system/systemd-sysusers.service.d/overrides.conf")
    seed = text(initrd(USERS), "lib/systemd/system/sonix-etc-seed.service")
    for line in credentials:
        assert line in dropin.splitlines()
        assert line in seed.splitlines()


def test_user_errors() -> None:
    message = error_of(
        """{ ... }: {
          users.users.x = { };
          users.users.y = { isNormalUser = true; uid = 999; };
          users.users.z = { isSystemUser = true; uid = 999; };
        }"""
    )
    assert "users.users.x: set exactly one of `isNormalUser` or `isSystemUser`." in message
    assert "users.users.y is a normal user, so its uid must be 1000 or more (it is 999)." in message
    assert "these uids are used more than once: 999." in message


# ---- networking -------------------------------------------------------------------------


def test_default_network_and_networkd_enablement() -> None:
    files = usr()
    assert text(files, "lib/systemd/network/80-sonix-ether.network") == (
        "[Match]\nName=en* eth*\nType=ether\n\n[Network]\nDHCP=yes\nIPv6AcceptRA=true\n"
    )
    wants = "lib/systemd/system/multi-user.target.wants/systemd-networkd.service"
    assert link(files, wants) == "../systemd-networkd.service"
    assert "lib/systemd/system/sockets.target.wants/systemd-networkd.socket" in files
    assert "lib/systemd/system/dbus-org.freedesktop.network1.service" in files
    assert text(files, "share/factory/etc/hostname") == "sonix\n"


def test_network_files() -> None:
    files = usr(
        """{ ... }: {
          networking = { hostName = "web-1"; useDHCP = false; };
          systemd.network.networks."10-lan" = {
            matchConfig.Name = "enp1s0";
            networkConfig = {
              Address = [ "192.0.2.10/24" "2001:db8::10/64" ]; DNS = "192.0.2.53";
            };
            extraConfig = "[Route]\\nGateway=192.0.2.1\\n";
          };
          systemd.network.netdevs."20-br0".netdevConfig = { Name = "br0"; Kind = "bridge"; };
          systemd.network.links."10-wan" = {
            matchConfig.MACAddress = "52:54:00:12:34:56";
            linkConfig.Name = "wan0";
          };
          systemd.network.links."11-off" = { enable = false; linkConfig.Name = "x"; };
        }"""
    )
    assert "lib/systemd/network/80-sonix-ether.network" not in files
    assert text(files, "lib/systemd/network/10-lan.network") == (
        "[Match]\nName=enp1s0\n\n[Network]\nAddress=192.0.2.10/24\nAddress=2001:db8::10/64\n"
        "DNS=192.0.2.53\n\n[Route]\nGateway=192.0.2.1\n"
    )
    assert text(files, "lib/systemd/network/20-br0.netdev") == (
        "[NetDev]\nKind=bridge\nName=br0\n"
    )
    assert text(files, "lib/systemd/network/10-wan.link") == (
        "[Match]\nMACAddress=52:54:00:12:34:56\n\n[Link]\nName=wan0\n"
    )
    assert "lib/systemd/network/11-off.link" not in files
    assert text(files, "share/factory/etc/hostname") == "web-1\n"


def test_networkd_can_be_switched_off() -> None:
    files = usr("{ ... }: { systemd.network.enable = false; }")
    assert not any(path.startswith("lib/systemd/network/") for path in files)
    assert not any("systemd-networkd" in path for path in files)


# ---- repart, boot, journald -------------------------------------------------------------


def test_repart_definitions_in_the_initrd() -> None:
    files = initrd(
        """{ ... }: {
          systemd.repart.partitions."50-root".SizeMinBytes = "1G";
          systemd.repart.partitions."60-swap" = {
            Type = "swap"; Format = "swap"; SizeMinBytes = "512M"; SizeMaxBytes = "512M";
          };
        }"""
    )
    assert text(files, "lib/repart.d/50-root.conf") == (
        "[Partition]\nFormat=ext4\nSizeMinBytes=1G\nType=root\n"
    )
    assert text(files, "lib/repart.d/60-swap.conf") == (
        "[Partition]\nFormat=swap\nSizeMaxBytes=512M\nSizeMinBytes=512M\nType=swap\n"
    )
    assert text(files, "lib/systemd/system/systemd-repart.service.d/overrides.conf") == (
        "[Service]\nExecStart=\n"
        "ExecStart=systemd-repart --dry-run=no --definitions=/usr/lib/repart.d\n"
    )
    assert "lib/systemd/system/systemd-repart.service" not in files


def test_repart_default_and_initrd_needs() -> None:
    files = initrd()
    assert text(files, "lib/repart.d/50-root.conf") == (
        "[Partition]\nFormat=ext4\nSizeMinBytes=256M\nType=root\n"
    )
    boot = evaluate("{ }", "boot.initrd")
    assert {"/usr/bin/systemd-repart", "/usr/sbin/mkfs.ext4", "/usr/sbin/e2fsck"} <= set(
        boot["binaries"]
    )
    assert "loop" in boot["availableKernelModules"]
    off = initrd("{ ... }: { systemd.repart.enable = false; }")
    assert not any("repart" in path for path in off)


def test_boot_defaults() -> None:
    boot = evaluate("{ }", "boot")
    assert boot["kernelParams"] == ["console=ttyS0,115200", "panic=5", "systemd.firstboot=no"]
    assert package_name(boot["kernel"]["package"]) == "linux-image-cloud-amd64"
    assert boot["loader"] == {"timeout": 0, "tries": 3, "bootOptions": 0}
    changed = evaluate(
        """{ ... }: {
          boot.kernel.consoles = [ "tty0" ];
          boot.kernel.panicTimeout = 0;
          boot.kernelParams = [ "quiet" ];
        }""",
        "boot.kernelParams",
    )
    assert changed == ["console=tty0", "systemd.firstboot=no", "quiet"]
    message = error_of("{ ... }: { boot.loader.tries = 0; }", "boot.loader")
    assert "A definition for option `boot.loader.tries' is not of type `positive integer" in message


def test_bpf_lsm_is_off_unless_a_unit_restricts_file_systems() -> None:
    assert evaluate("{ }", "boot.kernel.disabledLsms") == ["bpf"]
    restricting = """{ ... }: {
      systemd.services.web = {
        serviceConfig.ExecStart = "/usr/bin/true";
        serviceConfig.RestrictFileSystems = "ext4 tmpfs";
      };
      %s
    }"""
    message = error_of(restricting % "")
    assert ("systemd.services.web.serviceConfig.RestrictFileSystems needs the kernel's BPF LSM"
            in message)
    assert "boot.kernel.disabledLsms = [ ];" in message
    allowed = restricting % "boot.kernel.disabledLsms = [ ];"
    assert evaluate(allowed, "boot.kernel.disabledLsms") == []


def test_generators_a_server_does_not_use_are_masked() -> None:
    files, stage1 = usr(), initrd()
    for name in ("systemd-sysv-generator", "systemd-rc-local-generator",
                 "systemd-hibernate-resume-generator", "systemd-tpm2-generator"):
        assert link(files, f"lib/systemd/system-generators/{name}") == "/dev/null"
        assert link(stage1, f"lib/systemd/system-generators/{name}") == "/dev/null"
    for needed in ("systemd-fstab-generator", "systemd-gpt-auto-generator",
                   "systemd-veritysetup-generator", "systemd-getty-generator",
                   "systemd-bless-boot-generator", "systemd-debug-generator"):
        assert f"lib/systemd/system-generators/{needed}" not in files
    everything = usr("{ ... }: { systemd.disabledGenerators = [ ]; }")
    # Only sonix's own generator is left (health.nix: the limits of a trial boot).
    assert [p for p in everything if p.startswith("lib/systemd/system-generators/")] == [
        "lib/systemd/system-generators/sonix-trial-generator"
    ]
    message = error_of('{ ... }: { systemd.disabledGenerators = [ "../x" ]; }')
    assert "systemd.disabledGenerators" in message


def test_units_a_server_does_not_need_are_masked() -> None:
    files, stage1 = usr(), initrd()
    # logind's Wants=modprobe@drm (seats with graphics); repart's Wants=modprobe@loop (images).
    assert link(files, "lib/systemd/system/modprobe@drm.service") == "/dev/null"
    assert "lib/systemd/system/modprobe@loop.service" not in files  # nspawn, podman use loop
    assert link(stage1, "lib/systemd/system/modprobe@loop.service") == "/dev/null"
    assert "lib/systemd/system/modprobe@drm.service" not in stage1
    none = '{ ... }: { systemd.maskedUnits = [ ]; boot.initrd.systemd.maskedUnits = [ ]; }'
    assert "lib/systemd/system/modprobe@drm.service" not in usr(none)
    assert "lib/systemd/system/modprobe@loop.service" not in initrd(none)
    more = usr('{ ... }: { systemd.maskedUnits = [ "systemd-binfmt.service" ]; }')
    assert link(more, "lib/systemd/system/systemd-binfmt.service") == "/dev/null"
    assert "lib/systemd/system/modprobe@drm.service" not in more  # a definition replaces
    message = error_of('{ ... }: { systemd.maskedUnits = [ "../x.service" ]; }')
    assert "systemd.maskedUnits" in message
    message = error_of('{ ... }: { boot.initrd.systemd.maskedUnits = [ "loop" ]; }')
    assert "boot.initrd.systemd.maskedUnits" in message


def test_kernel_modules_to_load() -> None:
    module = """{ ... }: {
      boot.kernelModules = [ "br_netfilter" "wireguard" ];
      boot.initrd.kernelModules = [ "dm_verity" ];
    }"""
    assert text(usr(module), "lib/modules-load.d/sonix.conf") == "br_netfilter\nwireguard\n"
    assert text(initrd(module), "lib/modules-load.d/sonix-initrd.conf") == "dm_verity\n"
    assert "dm_verity" in evaluate(module, "boot.initrd.kernelModules")
    assert "lib/modules-load.d/sonix.conf" not in usr()
    assert "lib/modules-load.d/sonix-initrd.conf" not in initrd()


def test_packages_are_the_system_set_and_the_kernel() -> None:
    names = [package_name(p) for p in evaluate("{ }", "environment.packages")]
    assert {"systemd", "bash", "dbus-broker", "systemd-repart"} <= set(names)
    assert names.count("linux-image-cloud-amd64") == 1
    other = [
        package_name(p)
        for p in evaluate(
            "{ pkgs, ... }: { boot.kernel.package = pkgs.openssh-server; }",
            "environment.packages",
        )
    ]
    assert "linux-image-cloud-amd64" not in other


def test_journald_dropin() -> None:
    files = usr(
        """{ ... }: {
          services.journald = {
            storage = "volatile"; systemMaxUse = "50M"; extraConfig = "Compress=no\\n";
          };
        }"""
    )
    forwarding = "ForwardToConsole=false\nForwardToKMsg=false\nForwardToSyslog=false\n"
    assert text(files, "lib/systemd/journald.conf.d/50-sonix.conf") == (
        f"[Journal]\n{forwarding}Storage=volatile\nSystemMaxUse=50M\nCompress=no\n"
    )
    assert text(usr(), "lib/systemd/journald.conf.d/50-sonix.conf") == (
        f"[Journal]\n{forwarding}Storage=persistent\n"
    )


# ---- examples and documentation ---------------------------------------------------------


def example(name: str) -> str:
    return str(EXAMPLES / name)


def test_minimal_example() -> None:
    files = usr(example("minimal.nix"))
    assert text(files, "share/factory/etc/hostname") == "minimal\n"
    assert 'u admin 1000:users "Administrator"' in text(files, "lib/sysusers.d/sonix.conf")
    assert "lib/systemd/network/80-sonix-ether.network" in files
    assert "SystemMaxUse=100M" in text(files, "lib/systemd/journald.conf.d/50-sonix.conf")


def test_server_example() -> None:
    files = usr(example("server.nix"))
    assert "lib/systemd/network/10-uplink.network" in files
    assert "lib/systemd/system/timers.target.wants/prune-uploads.timer" in files
    assert "lib/systemd/system/local-fs.target.wants/srv-incoming.mount" in files
    assert "lib/systemd/system/srv-incoming.mount" in files
    assert "lib/sonix/scripts/prune-uploads-start" in files
    boot_files = initrd(example("server.nix"))
    assert "SizeMinBytes=1G" in text(boot_files, "lib/repart.d/50-root.conf")
    assert "Type=srv" in text(boot_files, "lib/repart.d/70-srv.conf")
    binaries = evaluate(example("server.nix"), "boot.initrd.binaries")
    assert "/usr/sbin/mkswap" in binaries
    params = evaluate(example("server.nix"), "boot.kernelParams")
    assert params[-1] == "quiet"
    assert "console=tty0" in params


def test_core_options_are_documented() -> None:
    root = paths.source_root()
    result = nix.eval_expr_json(f"(import {root}/docs/options.nix {{ }}).undocumented")
    assert result == []


def test_disk_drivers_load_at_the_start_of_stage_1() -> None:
    assert text(initrd(), "lib/modules-load.d/sonix-disk.conf") == "virtio_blk\nvirtio_scsi\n"
    bare_metal = '{ ... }: { boot.initrd.diskDrivers = [ "nvme" "ahci" ]; }'
    assert text(initrd(bare_metal), "lib/modules-load.d/sonix-disk.conf") == "nvme\nahci\n"
    assert {"nvme", "ahci"} <= set(evaluate(bare_metal, "boot.initrd.availableKernelModules"))
    none = "{ ... }: { boot.initrd.diskDrivers = [ ]; }"
    assert "lib/modules-load.d/sonix-disk.conf" not in initrd(none)


def test_the_boot_loader_random_seed_does_not_hold_up_sysinit() -> None:
    unit = text(usr(), "lib/systemd/system/systemd-boot-random-seed.service")
    assert "ExecStart=bootctl --graceful random-seed" in unit
    assert "DefaultDependencies=false" in unit
    # Debian's unit has Before=sysinit.target: every boot then waits for the ESP's device.
    assert "sysinit.target" not in unit
    assert "Before=shutdown.target" in unit


def test_modprobe_units_skip_modules_that_are_already_there() -> None:
    for files in (usr(), initrd()):
        dropin = text(files, "lib/systemd/system/modprobe@.service.d/overrides.conf")
        assert "ConditionPathExists=!/sys/module/%i" in dropin
        assert "ExecStart" not in dropin  # Debian's unit still does the loading


def test_secure_boot_images_register_a_boot_option_per_try() -> None:
    """boot.loader.bootOptions: with Secure Boot, one firmware boot option per try starts
    systemd-boot again after the firmware refused a UKI (agents/bootorder.py)."""
    assert "sonix-boot-options.service" not in " ".join(usr())
    module = """{ ... }: {
      boot.loader = { tries = 2; bootOptions = 2; };
    }"""
    files = usr(module)
    unit = text(files, "lib/systemd/system/sonix-boot-options.service")
    assert "ExecStart=/usr/bin/python3 -I /usr/lib/sonix/agents/bootorder.py 2\n" in unit
    assert "TimeoutStartSec=60s" in unit
    # Off the critical path: multi-user.target does not wait for it.
    assert "DefaultDependencies=false" in unit and "CPUSchedulingPolicy=idle" in unit
    assert "lib/sonix/agents/bootorder.py" in files
    assert "lib/systemd/system/multi-user.target.wants/sonix-boot-options.service" in files
