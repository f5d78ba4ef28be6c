# Multi-line strings are shown as indented strings in messages.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [ { options.s = lib.mkOption { type = lib.types.int; }; } { _file = "m.nix"; s = "one\ntwo"; } ];
}).config
