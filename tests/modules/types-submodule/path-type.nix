# The submodule's own module may be a path.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [ { options.s = lib.mkOption { type = lib.types.submodule ./path-type.d/sub.nix; default = { }; }; } ];
}).config
