# Sub-options are declared in the file that declared the submodule option, also when merged.
let lib = import ../../../lib; in
map (e: { inherit (e) name declarations; }) (builtins.filter (e: !e.internal) (lib.optionsToDocList (lib.evalModules {
  modules = [
    { _file = "users.nix"; options.users = lib.mkOption { description = "u"; type = lib.types.attrsOf (lib.types.submodule { options.uid = lib.mkOption { description = "id"; }; }); }; }
    { _file = "homes.nix"; options.users = lib.mkOption { type = lib.types.attrsOf (lib.types.submodule ({ name, ... }: { options.home = lib.mkOption { description = "h"; default = "/home/${name}"; }; })); }; }
    { _file = "web.nix"; options.web = lib.mkOption { description = "w"; type = lib.types.submodule { options.port = lib.mkOption { description = "p"; }; }; }; }
  ];
}).options))
