# Entries are sorted by name, across modules.
let lib = import ../../../lib; in
map (e: e.name) (builtins.filter (e: !e.internal) (lib.optionsToDocList (lib.evalModules {
  modules = [ { options.z = lib.mkOption { }; } { options.a.b = lib.mkOption { }; options.m = lib.mkOption { }; } ];
}).options))
