#!/usr/bin/env bash
# Runs NixOS's module-system test suite (nixpkgs' lib/tests/modules.sh and lib/tests/modules/)
# against sonix's lib, to measure how at home NixOS users are. Their tests stay outside this
# repository: give the path of a nixpkgs checkout (or of its lib/ alone).
#
#   tests/modules/nixos-parity.sh /path/to/nixpkgs [-v]
#
# The copy it runs in a temporary directory gets a lib/default.nix of ours: nixpkgs' library
# for the general helpers (lib.foldl', lib.strings, ...) with every module-system name removed
# (lib.modules, lib.options, lib.types and their flat names), and sonix's lib on top
# (lib/compose.nix). So evalModules, mkOption, the types, ... are all ours; a name only NixOS's
# module system has is missing. Prints modules.sh's own "N Pass / M Fail" summary; with -v
# also the failing checks. docs/module-system.md lists the expected failures and why.
set -o errexit -o nounset -o pipefail

ref=${1:?usage: $0 NIXPKGS-CHECKOUT [-v]}
verbose=${2:-}
[[ -d $ref/lib/tests/modules ]] || ref=$(dirname "$ref")
[[ -f $ref/lib/tests/modules.sh ]] || { echo "$0: no lib/tests/modules.sh under $1" >&2; exit 2; }
ref=$(cd "$ref" && pwd)
sonix_lib=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../lib" && pwd)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lib"
cp -r "$ref/lib/tests" "$work/lib/tests"
chmod -R u+w "$work"
cat > "$work/lib/default.nix" <<NIX
let
  nixpkgs = import $ref/lib;
  moduleSystem =
    builtins.attrNames nixpkgs.modules
    ++ builtins.attrNames nixpkgs.options
    ++ builtins.attrNames nixpkgs.types
    ++ [ "modules" "options" "types" "mkOptionType" "isOptionType" "defaultTypeMerge" "defaultFunctor" ];
in
import $sonix_lib/compose.nix { base = builtins.removeAttrs nixpkgs moduleSystem; }
NIX

log=$work/log
status=0
bash "$work/lib/tests/modules.sh" >"$log" 2>&1 || status=$?
if [[ $verbose == -v ]]; then
  cat "$log"
else
  grep -E '^[0-9]+ (Pass|Fail)$' "$log" || { tail -20 "$log"; exit 2; }
fi
exit "$status"
