# mkIf false on a whole attrsOf-submodule entry removes the entry.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.users = lib.mkOption { type = lib.types.attrsOf (lib.types.submodule { options.uid = lib.mkOption { type = lib.types.int; default = 0; }; }); }; }
    { users.a = { }; users.b = lib.mkIf false { uid = 1; }; }
  ];
}).config
