# Sub-options of attrsOf and listOf submodules are listed under `<name>` and `*`.
let lib = import ../../../lib; in
map (e: e.name) (builtins.filter (e: !e.internal) (lib.optionsToDocList (lib.evalModules {
  modules = [ {
    options.users = lib.mkOption { description = "u"; type = lib.types.attrsOf (lib.types.submodule ({ name, ... }: {
      options.home = lib.mkOption { type = lib.types.str; default = "/home/${name}"; description = "h"; };
    })); };
    options.rules = lib.mkOption { description = "r"; type = lib.types.listOf (lib.types.submodule { options.port = lib.mkOption { type = lib.types.port; description = "p"; }; }); };
    options.single = lib.mkOption { description = "s"; type = lib.types.submodule { options.x = lib.mkOption { description = "x"; }; }; };
  } ];
}).options))
