# A sub-option's default that uses `name` shows the placeholder.
let lib = import ../../../lib; in
let
  entries = lib.optionsToDocList (lib.evalModules {
    modules = [ { options.users = lib.mkOption { description = "u"; type = lib.types.attrsOf (lib.types.submodule ({ name, ... }: {
      options.home = lib.mkOption { type = lib.types.str; default = "/home/${name}"; description = "h"; };
    })); }; } ];
  }).options;
in
(builtins.head (builtins.filter (e: e.name == "users.<name>.home") entries)).default
