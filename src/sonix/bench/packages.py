"""`sonix bench pkgs`: lock, fetch and the /usr tree of the minimal server set, cold and warm.

    ./sonix bench pkgs          # warm figures only (changes nothing)
    ./sonix bench pkgs --cold   # also cold: deletes this set's store paths

Cold means: lock with an empty apt state (fresh index download); fetch with none of the
system and tools .debs in the Nix store; the tree build with none of the unpacked packages,
the tools tree or the system tree in the store. `--cold` deletes exactly those store paths
(`nix-store --delete`, which refuses paths that are still in use) and then rebuilds them.
Warm means: the same command again with nothing changed. Results go to stdout as Markdown.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sonix import nix, paths, process
from sonix.bench import add_workload
from sonix.debian import fetch, lock

SETS = ("system", "tools")


def register(workloads: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = add_workload(
        workloads, "pkgs",
        "lock, fetch and the /usr tree of the minimal server set, cold and warm",
        __doc__, run,
    )
    parser.add_argument("--cold", action="store_true", help="also measure cold (deletes paths)")


def timed(what: Callable[[], object]) -> float:
    start = time.monotonic()
    what()
    return time.monotonic() - start


def sonix(*args: str, state: Path | None = None) -> None:
    env = {"SONIX_ROOT": str(paths.source_root())}
    if state:
        env["SONIX_STATE_DIR"] = str(state)
    process.run([sys.executable, "-m", "sonix", *args], env=env, capture=True)


def nix_build(attr: str) -> Path:
    return nix.build(paths.source_root() / "pkgs", attr)[0]


def nix_value(expr: str) -> list[str]:
    result: list[str] = nix.eval_expr_json(expr)
    return result


def seconds(t: float | None) -> str:
    return "-" if t is None else f"{t:.1f} s"


def mib(n: float) -> str:
    return f"{n / (1 << 20):.1f} MiB"


def delete(paths: list[str]) -> int:
    """Delete what can be deleted; returns how many paths stayed (in use by a running build:
    Nix refuses those, and the cold figure is then partly warm)."""
    existing = [p for p in paths if os.path.exists(p)]
    if not existing:
        return 0
    if nix.delete(existing):
        return 0
    for path in existing:  # one at a time: skip the live ones
        nix.delete([path])
    return sum(1 for p in existing if os.path.exists(p))


def run(args: argparse.Namespace) -> int:
    locked = lock.read_lock()
    names = sorted({n for s in SETS for n in locked.set_closure(s)})
    debs = [str(fetch.store_path(locked.packages[n])) for n in names]
    pkgs = f"import {paths.source_root()}/pkgs {{ }}"
    name_list = " ".join(json.dumps(n) for n in names)  # JSON strings are Nix strings too
    unpacked = nix_value(f"let p = {pkgs}; in map (n: p.${{n}}.outPath) [ {name_list} ]")
    trees = nix_value(
        f"let p = {pkgs}; in map (x: x.outPath) [ p.systemTree p.tools p.runInTools ]"
    )
    rows: list[tuple[str, str, str]] = []

    with tempfile.TemporaryDirectory() as tmp:
        state, out = Path(tmp) / "state", Path(tmp) / "lock.json"
        cold_lock = timed(lambda: sonix("lock", "-o", str(out), state=state)) if args.cold else None
        if not args.cold:
            sonix("lock", "-o", str(out), state=state)
        warm_lock = timed(lambda: sonix("lock", "-o", str(out), state=state))
        rows.append(("lock (3 sets)", seconds(cold_lock), seconds(warm_lock)))

    fetch_args = [a for s in SETS for a in ("--set", s)]
    cold_fetch = cold_build = None
    if args.cold:
        kept = delete(trees + unpacked) + delete(debs)
        if kept:
            print(f"note: {kept} store paths were in use and stayed (cold is partly warm)")
        cold_fetch = timed(lambda: sonix("fetch", *fetch_args))
    warm_fetch = timed(lambda: sonix("fetch", *fetch_args))
    rows.append((f"fetch ({len(names)} .debs)", seconds(cold_fetch), seconds(warm_fetch)))

    if args.cold:
        cold_build = timed(lambda: nix_build("systemTree"))
    else:
        nix_build("systemTree")
    warm_build = timed(lambda: nix_build("systemTree"))
    rows.append(("/usr tree (systemTree, incl. tools)", seconds(cold_build), seconds(warm_build)))

    system_tree, tools_tree = nix_build("systemTree"), nix_build("tools")
    system = locked.set_closure("system")
    tools = locked.set_closure("tools")
    print("| step | cold | warm |\n|---|---|---|")
    for step, cold, warm in rows:
        print(f"| {step} | {cold} | {warm} |")
    print()
    print("| size | value |\n|---|---|")
    print(f"| system .debs ({len(system)}) | {mib(sum(locked.packages[n].size for n in system))} |")
    print(f"| tools .debs ({len(tools)}) | {mib(sum(locked.packages[n].size for n in tools))} |")
    print(f"| system tree, unpacked (NAR) | {mib(nix.nar_size(system_tree))} |")
    print(f"| tools tree, unpacked (NAR) | {mib(nix.nar_size(tools_tree))} |")
    return 0
