# A type error inside a submodule names the full option path.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.users = lib.mkOption { type = lib.types.attrsOf (lib.types.submodule { options.uid = lib.mkOption { type = lib.types.int; }; }); }; }
    { _file = "users.nix"; users.alice.uid = "1000"; }
  ];
}).config
