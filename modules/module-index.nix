# Which on-demand module declares which options, for the error about an undeclared option:
# `services.nginx.enable = true;` without importing nginx.nix names the module and the
# `imports` line to add.
#
# The index is computed, not kept by hand: one evaluation of the core and every on-demand
# module (./on-demand.nix), of which only the option declarations are read. It is only
# forced when an error is shown, so it costs nothing otherwise.
{ lib ? import ../lib }:
let
  root = toString ./.;
  onDemand = map toString (import ./on-demand.nix);
  isOnDemand = file: builtins.elem (toString file) onDemand;

  everything = lib.evalModules {
    modules = import ./all-modules.nix ++ [ { _module.check = false; } ];
    specialArgs.modulesPath = ./.;
  };

  # The declarations of the option at `path` or of every option below it.
  declarationsAt = path:
    let
      node = lib.attrByPath path null everything.options;
      options = if node == null then [ ] else if lib.isOption node then [ node ] else lib.collect lib.isOption node;
    in
    lib.unique (lib.concatMap (o: map toString o.declarations) options);

  # "services/nginx.nix" for …/modules/services/nginx.nix.
  relative = file: lib.removePrefix "${root}/" file;

  # The on-demand modules that declare the options at `path` (a list of attribute names).
  modulesFor = path: map relative (lib.filter isOnDemand (declarationsAt path));

  # The option prefixes of each on-demand module (the top-most paths the core does not
  # declare), for the docs and the test that keeps this file honest.
  core = lib.evalModules {
    modules = import ./module-list.nix ++ [ { _module.check = false; } ];
    specialArgs.modulesPath = ./.;
  };
  prefixesOf = file:
    let
      mine = lib.filter (o: builtins.elem (toString file) (map toString o.declarations))
        (lib.collect lib.isOption everything.options);
      # The shortest prefix of an option's path that the core does not declare.
      topmost = loc:
        let go = n: if n >= builtins.length loc || !(lib.hasAttrByPath (lib.take n loc) core.options) then lib.take n loc else go (n + 1);
        in go 1;
    in
    lib.unique (map (o: lib.concatStringsSep "." (topmost o.loc)) mine);
in
{
  inherit modulesFor;

  index = lib.listToAttrs (map (file: {
    name = relative (toString file);
    value = prefixesOf file;
  }) (import ./on-demand.nix));

  # The help that follows the error's first line ("" when no on-demand module declares it).
  hint = path:
    let found = modulesFor path; in
    if found == [ ] then ""
    else
      "The options at `${lib.concatStringsSep "." path}' come from the on-demand module modules/${lib.head found}, which this configuration does not import. Add it to the configuration's imports:\n"
      + "  imports = [ ${lib.concatMapStringsSep " " (f: "<sonix/modules/${f}>") found} ];";
}
