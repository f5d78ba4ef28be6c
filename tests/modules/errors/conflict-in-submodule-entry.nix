# A conflict inside an attrsOf submodule names the entry's full path.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.users = lib.mkOption { type = lib.types.attrsOf (lib.types.submodule { options.uid = lib.mkOption { type = lib.types.int; }; }); }; }
    { _file = "a.nix"; users.bob.uid = 1; } { _file = "b.nix"; users.bob.uid = 2; }
  ];
}).config
