# The options of the core modules as documentation entries (see lib/docs.nix), and the names of
# visible options that lack a description. `sonix docs` renders this; any undocumented option
# makes it fail.
{ modules ? import ../modules/all-modules.nix }:
let
  lib = import ../lib;
  evaluated = import ../eval-config.nix {
    inherit modules;
    # Docs never need packages; a module that reads `pkgs` at the top level is a bug there.
    specialArgs.pkgs = throw "the documentation build does not provide pkgs";
  };
  entries = lib.optionsToDocList evaluated.options;
in
{
  options = builtins.filter (e: e.visible && !e.internal) entries;
  undocumented = lib.undocumentedOptions entries;
}
