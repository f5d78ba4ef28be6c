# Undeclared definitions below a declared set of options are freeform at their full path.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { freeformType = lib.types.attrsOf (lib.types.attrsOf lib.types.int); options.net.port = lib.mkOption { type = lib.types.int; default = 80; }; }
    { net.mtu = 1500; }
  ];
}).config
