# nullOr: null and non-null definitions together are an error listing the files.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [ { options.a = lib.mkOption { type = lib.types.nullOr lib.types.int; }; } { _file = "n.nix"; a = null; } { _file = "v.nix"; a = 1; } ];
}).config
