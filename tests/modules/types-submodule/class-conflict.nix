# Merged submoduleWith declarations must agree on their class.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.s = lib.mkOption { type = lib.types.submoduleWith { class = "sonix"; modules = [ ]; }; }; }
    { options.s = lib.mkOption { type = lib.types.submoduleWith { class = "darwin"; modules = [ ]; }; }; }
    { s = { }; }
  ];
}).config
