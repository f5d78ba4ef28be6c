# With submoduleWith (shorthandOnlyDefinesConfig = false), a definition is a whole module.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.s = lib.mkOption { type = lib.types.submoduleWith { modules = [ { options.a = lib.mkOption { default = 1; }; } ]; }; }; }
    { s = { options.b = lib.mkOption { default = 2; }; config.a = 3; }; }
  ];
}).config
