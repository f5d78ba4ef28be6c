# Declaring an option twice with the same type is fine.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.l = lib.mkOption { type = lib.types.listOf lib.types.str; }; }
    { options.l = lib.mkOption { type = lib.types.listOf lib.types.str; default = [ "d" ]; }; }
  ];
}).config
