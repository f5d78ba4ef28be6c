# An option record exposes the merged value, definitions and files.
let lib = import ../../../lib; in
let r = lib.evalModules {
  modules = [
    { options.l = lib.mkOption { type = lib.types.listOf lib.types.int; }; }
    { _file = "one.nix"; l = [ 1 ]; }
    { _file = "two.nix"; l = [ 2 ]; }
  ];
}; in
{ inherit (r.options.l) value definitions files loc highestPrio isDefined; }
