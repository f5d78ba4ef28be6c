# An option whose type takes no sub-options cannot also have sub-options declared.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { _file = "opt.nix"; options.x = lib.mkOption { type = lib.types.int; }; }
    { _file = "sub.nix"; options.x.y = lib.mkOption { type = lib.types.int; }; }
  ];
}).config
