# An option's default is its value when nothing defines it.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [ { options.port = lib.mkOption { type = lib.types.port; default = 80; }; } ];
}).config
