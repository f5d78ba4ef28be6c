# coercedTo: a value of neither type is an error describing both.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.l = lib.mkOption { type = lib.types.coercedTo lib.types.int toString lib.types.str; }; }
    { _file = "b.nix"; l = true; }
  ];
}).config
