# setDefaultModuleLocation gives an anonymous module a file name for messages.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.x = lib.mkOption { type = lib.types.int; }; }
    (lib.setDefaultModuleLocation "generated.nix" { config = lib.mkMerge [ { x = "s"; } ]; })
  ];
}).config
