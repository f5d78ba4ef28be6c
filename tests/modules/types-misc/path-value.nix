# path keeps the definition as given.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [ { options.p = lib.mkOption { type = lib.types.path; }; } { p = "/srv/data"; } ];
}).config
