# An option declared in several modules is still an option record (isOption).
let lib = import ../../../lib; in
let o = (lib.evalModules {
  modules = [ { options.x = lib.mkOption { description = "x"; }; } { options.x = lib.mkOption { type = lib.types.int; default = 1; }; } ];
}).options; in
{ merged = lib.isOption o.x; single = lib.isOption o._module.check; }
