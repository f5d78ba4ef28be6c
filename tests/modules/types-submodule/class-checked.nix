# A submoduleWith with a class refuses modules of another class.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.s = lib.mkOption { type = lib.types.submoduleWith { class = "container"; modules = [ ]; }; }; }
    { s = { _file = "host.nix"; _class = "sonix"; }; }
  ];
}).config
