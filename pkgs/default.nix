# The locked Debian 13 (trixie) package set as Nix values: `import ./pkgs { }`.
# Reference: docs/packages.md. Inputs: pkgs/lock.json (written by `sonix lock`) and the .debs
# in the Nix store (put there by `sonix fetch`); nothing here downloads anything.
{
  lockFile ? ./lock.json,
  system ? builtins.currentSystem,
  # Host programs: bubblewrap for runInTools; sh, dpkg-deb and tar to unpack and merge .debs.
  bwrap ? "/usr/bin/bwrap",
  hostPath ? "/usr/bin:/bin",
  # Timestamp for everything the build generates (shadow's last-change field, …).
  sourceDateEpoch ? 1735689600, # 2025-01-01
}:
let
  inherit (builtins)
    attrNames concatStringsSep elemAt filter foldl' genList genericClosure hasAttr length
    lessThan listToAttrs mapAttrs replaceStrings sort stringLength substring;

  lock = builtins.fromJSON (builtins.readFile lockFile);

  # Store path names allow [A-Za-z0-9+-._?=]; Debian versions may contain `~` and `:`.
  # (src/sonix/debian/lock.py, LockedPackage.store_name, does the same.)
  storeSafe = replaceStrings [ "~" ":" ] [ "-" "-" ];

  # ---- unknown names: say which locked names are closest -----------------------------------
  min = a: b: if a < b then a else b;
  editDistance = a: b:
    let
      lb = stringLength b;
      step = prev: i:
        let ca = substring (i - 1) 1 a;
        in foldl' (row: j: row ++ [
          (min (min (elemAt prev j + 1) (elemAt row (j - 1) + 1))
            (elemAt prev (j - 1) + (if ca == substring (j - 1) 1 b then 0 else 1)))
        ]) [ i ] (genList (j: j + 1) lb);
    in elemAt (foldl' step (genList (j: j) (lb + 1)) (genList (i: i + 1) (stringLength a))) lb;
  closest = name:
    let
      scored = map (n: { inherit n; d = editDistance name n; }) (attrNames lock.packages);
      near = filter (x: x.d <= 2 + stringLength name / 4) scored;
      sorted = sort (x: y: x.d < y.d || (x.d == y.d && lessThan x.n y.n)) near;
    in map (x: x.n) (if length sorted > 5 then genList (elemAt sorted) 5 else sorted);
  checkName = name:
    if hasAttr name lock.packages then name
    else
      let near = closest name;
      in throw ("pkgs: unknown package '${name}': it is not in pkgs/lock.json"
        + (if near == [ ] then "" else " (closest: ${concatStringsSep ", " near})")
        + ". Add it to a set in pkgs/packages.toml and run `sonix lock`.");

  # ---- the .debs: fixed-output paths that `sonix fetch` adds; never built here -------------
  fetchHint = "run `sonix fetch` (or `sonix build`, which fetches first)";
  debs = mapAttrs (name: p: derivation {
    name = storeSafe "${name}_${p.version}_${p.architecture}.deb";
    inherit system;
    builder = "/bin/sh";
    args = [ "-c" "echo 'sonix: ${p.filename} (${name} ${p.version}, sha256 ${p.sha256}) is not in the Nix store: ${fetchHint}' >&2; exit 1" ];
    outputHashMode = "flat";
    outputHashAlgo = "sha256";
    outputHash = p.sha256;
    preferLocalBuild = true;
  }) lock.packages;

  # ---- pkgs.<name>: one package unpacked -------------------------------------------------
  # Extra attributes (not derivation inputs): debianName, debianVersion, deb.
  unpacked = mapAttrs (name: p: derivation {
    name = storeSafe "${name}-${p.version}";
    inherit system;
    builder = "/bin/sh";
    args = [ ./build-support/unpack.sh ];
    deb = debs.${name};
    PATH = hostPath;
  } // {
    debianName = name;
    debianVersion = p.version;
    deb = debs.${name};
  }) lock.packages;

  # Package names, or package values of this set (pkgs.systemd), as names.
  toName = p:
    if builtins.isString p then p
    else p.debianName or (throw "pkgs: expected a Debian package name or a package of pkgs, got ${builtins.typeOf p}${if p ? name then " '${p.name}'" else ""}");

  # Names reachable from packages (names or package values) through the locked dependencies.
  closure = packages: sort lessThan (map (x: x.key) (genericClosure {
    startSet = map (p: { key = checkName (toName p); }) packages;
    operator = item: map (d: { key = d; }) lock.packages.${item.key}.depends;
  }));

  mergeAttrs = { names, exclude ? [ ] }: {
    inherit system;
    PATH = hostPath;
    mergeScript = ./build-support/merge.sh;
    packages = map (n: unpacked.${n}) names;
    packageNames = names;
    excludeFile = builtins.toFile "exclude" (concatStringsSep "" (map (p: "./${p}\n") exclude));
    SOURCE_DATE_EPOCH = toString sourceDateEpoch;
  };

  # ---- the tools tree and the helper that runs a command inside it -----------------------
  tools = derivation (mergeAttrs { names = closure lock.sets.tools.roots; } // {
    name = "sonix-tools";
    builder = "/bin/sh";
    args = [ ./build-support/tools-tree.sh ];
  });

  runInTools = derivation {
    name = "run-in-tools";
    inherit system tools bwrap;
    builder = "/bin/sh";
    PATH = hostPath;
    template = ./build-support/run-in-tools.sh;
    sourceDateEpoch = toString sourceDateEpoch;
    args = [ "-c" ''
      sed -e "s|@tools@|$tools|g; s|@bwrap@|$bwrap|g; s|@sourceDateEpoch@|$sourceDateEpoch|g" \
        "$template" > "$out" && chmod 555 "$out"
    '' ];
  };

  # ---- a system's root tree: the closure merged and configured ---------------------------
  # exclude: paths (tar wildcards, relative to /) to leave out, like dpkg's path-exclude,
  # e.g. [ "usr/share/locale/*" "usr/share/man/*" ].
  usrTree = { packages, name ? "sonix-usr", exclude ? [ ] }:
    derivation (mergeAttrs { names = closure packages; inherit exclude; } // {
      inherit name runInTools;
      builder = "/bin/sh";
      args = [ ./build-support/usr-tree.sh ];
      maintscripts = ../src/sonix/in_nix_build/maintscripts.py;
    });

  helpers = {
    inherit lock debs closure tools runInTools usrTree;
    # Root package names per set of pkgs/packages.toml (system, tools, services, …).
    sets = mapAttrs (_: s: s.roots) lock.sets;
    # The minimal server system: usrTree of the "system" set.
    systemTree = usrTree { packages = lock.sets.system.roots; name = "sonix-system-usr"; };
  };

  clashes = filter (n: hasAttr n lock.packages) (attrNames helpers);
in
if clashes != [ ] then throw "pkgs: Debian packages named like helper attributes: ${concatStringsSep ", " clashes}"
else unpacked // helpers
