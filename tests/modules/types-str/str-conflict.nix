# str: different definitions conflict; the error lists each file and value and suggests priorities.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.s = lib.mkOption { type = lib.types.str; }; }
    ./str-conflict.d/a.nix
    ./str-conflict.d/b.nix
  ];
}).config
