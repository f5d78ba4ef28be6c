# A submodule that cannot be evaluated on its own (it needs `pkgs`) is still described in errors.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.s = lib.mkOption { type = lib.types.submodule ({ pkgs, ... }: { imports = [ pkgs.someModule ]; }); }; }
    { _file = "s.nix"; s = 3; }
  ];
}).config
