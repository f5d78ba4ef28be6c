# lines: the default is replaced, not joined, by definitions.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [ { options.t = lib.mkOption { type = lib.types.lines; default = "d"; }; } { t = "x"; } ];
}).config
