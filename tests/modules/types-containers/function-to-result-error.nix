# functionTo: a wrong result names the function body.
let lib = import ../../../lib; in
let f = (lib.evalModules {
  modules = [ { options.f = lib.mkOption { type = lib.types.functionTo lib.types.int; }; } { _file = "f.nix"; f = x: "no"; } ];
}).config.f; in
f 1
