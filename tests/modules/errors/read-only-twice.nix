# A readOnly option set twice says so and lists both definitions.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.version = lib.mkOption { type = lib.types.str; readOnly = true; default = "1"; }; }
    { _file = "a.nix"; version = "2"; } { _file = "b.nix"; version = "2"; }
  ];
}).config
