"""`sonix bench updates` (issue 5): bytes downloaded per update, time from "found" to "blessed",
and the downtime of each activation (soft-reboot, kexec, reboot), measured in one run on one
VM under the same conditions, so the ratios compare like with like.

    ./sonix bench updates [--json]

One VM boots v1 of tests/vm/configs/updates-test.nix, then takes, from a channel served on
loopback:
  v2  a small configuration change (an /etc file): only /usr changes  → soft-reboot
  v3  a kernel-side change (a module added to the initrd)             → kexec
  v4  a small configuration change, `activation = reboot` forced       → reboot (firmware)

Downtime is guest wall-clock time from the agent's "activating" journal line to
multi-user.target of the new system; "found → blessed" from the agent's "found" line to
sonix-update-steady-state.service. Bytes are what the channel server sent.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from sonix import build, paths
from sonix.bench import add_workload
from sonix.release import release_build, signing
from sonix.release.serve import handler_for
from sonix.testing.driver import Driver
from sonix.testing.machine import Machine
from sonix.vm import qemu

BASE = paths.source_root() / "tests/vm/configs/updates-test.nix"
TIMEOUT = 1200
RELEASES = {
    "1": "",
    "2": 'environment.etc."bench/release".text = "2\\n";',
    "3": 'environment.etc."bench/release".text = "2\\n"; '
         'boot.initrd.availableKernelModules = [ "vfat" ];',
    "4": 'environment.etc."bench/release".text = "4\\n"; '
         'boot.initrd.availableKernelModules = [ "vfat" ];',
}


class CountingServer(ThreadingHTTPServer):
    sent = 0


def serve(directory: Path) -> CountingServer:
    base = handler_for(directory)

    class Counting(base):  # type: ignore[valid-type,misc]
        def send_header(self, keyword: str, value: str) -> None:
            if keyword == "Content-Length" and self.command == "GET":
                server.sent += int(value)
            super().send_header(keyword, value)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = CountingServer(("127.0.0.1", 0), Counting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def journal_time(machine: Machine, unit: str, pattern: str, boot: str = "") -> float:
    """Wall-clock seconds (guest) of the last journal line of `unit` containing `pattern`."""
    out = machine.succeed(
        f"journalctl {boot} -u {unit} -o short-unix --no-pager | grep -F '{pattern}' | tail -1")
    return float(out.split()[0])


def unit_entered(machine: Machine, unit: str) -> float:
    usec = machine.succeed(f"systemctl show -P ActiveEnterTimestampMonotonic {unit}").strip()
    realtime_now = float(machine.succeed("date +%s.%N"))
    monotonic_now = float(machine.succeed("cat /proc/uptime").split()[0])
    return realtime_now - monotonic_now + int(usec) / 1e6


def update(machine: Machine, server: CountingServer, version: str, method: str) -> dict[str, Any]:
    before = server.sent
    machine.succeed("systemctl start --no-block sonix-update.service")
    machine.wait_for_reboot(timeout=TIMEOUT, console=rf"Welcome to .*sonix {version} ")
    machine.wait_for_unit("sonix-update-steady-state.service", timeout=TIMEOUT)
    previous = "" if method == "soft-reboot" else "-b -1"
    activated = journal_time(machine, "sonix-update.service", f"activating sonix {version} by",
                             previous)
    found = journal_time(machine, "sonix-update.service", f"found sonix {version}", previous)
    up = unit_entered(machine, "multi-user.target")
    blessed = unit_entered(machine, "sonix-update-steady-state.service")
    log = machine.succeed(f"journalctl {previous} -u sonix-update.service --no-pager")
    assert f"by {method}" in log, log[-2000:]
    return {"version": version, "method": method, "bytes": server.sent - before,
            "downtime_s": round(up - activated, 1),
            "found_to_blessed_s": round(blessed - found, 1)}


def register(workloads: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = add_workload(
        workloads, "updates",
        "bytes, time to blessed and downtime of each update activation",
        __doc__, run,
    )
    parser.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="sonix-bench-updates-") as tmp_name:
        tmp = Path(tmp_name)
        key = signing.ensure_key(tmp / "key")
        builds = {}
        for version, extra in RELEASES.items():
            config = tmp / f"v{version}.nix"
            config.write_text(f'{{ ... }}: {{ imports = [ {BASE} ]; image.version = "{version}"; '
                              f"updates.trustedKeys = [ {key.trusted} ]; {extra} }}\n")
            builds[version] = build.build_system(config, tmp / f"out-{version}")
        channel = tmp / "channel"
        server = serve(channel)
        results = []
        with Driver(tmp / "vm") as driver:
            machine = driver.machine(
                "bench", image=builds["1"].image, disk_size=4 << 30, memory_mib=1536,
                guest_forwards=(qemu.GuestForward("10.0.2.100", 80, server.server_address[1]),),
            )
            machine.start()
            machine.wait_for_unit("sonix-update-steady-state.service", timeout=TIMEOUT)
            for version, method in (("2", "soft-reboot"), ("3", "kexec"), ("4", "reboot")):
                if method != "soft-reboot":  # auto would pick reboot for v3 under TCG
                    machine.succeed("mkdir -p /etc/sonix && echo '{\"activation\": "
                                    f"\"{method}\"}}' > /etc/sonix/update.json")
                release_build(builds[version], channel, key)
                results.append(update(machine, server, version, method))
        server.shutdown()
    reboot = next(r for r in results if r["method"] == "reboot")
    for r in results:
        r["downtime_vs_reboot"] = round(r["downtime_s"] / reboot["downtime_s"], 2)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(f"{'update':<8} {'activation':<12} {'MiB sent':>9} {'downtime':>9} "
              f"{'vs reboot':>9} {'found→blessed':>14}")
        for r in results:
            print(f"v{r['version']:<7} {r['method']:<12} {r['bytes'] / 2**20:>9.1f} "
                  f"{r['downtime_s']:>8.1f}s {r['downtime_vs_reboot']:>9.2f} "
                  f"{r['found_to_blessed_s']:>13.1f}s")
    return 0
