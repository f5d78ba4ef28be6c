# str: a path is not a string.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [ { options.s = lib.mkOption { type = lib.types.str; }; } { s = /etc/hosts; } ];
}).config
