# A field may be given by one declaration only.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { _file = "a.nix"; options.x = lib.mkOption { default = 1; }; }
    { _file = "b.nix"; options.x = lib.mkOption { default = 2; }; }
  ];
}).config
