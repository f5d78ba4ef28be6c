# undocumentedOptions also takes the option tree itself.
let lib = import ../../../lib; in
lib.undocumentedOptions (lib.evalModules {
  modules = [ { options.a = lib.mkOption { description = "a"; }; options.b.c = lib.mkOption { }; } ];
}).options
