# With lazyAttrsOf as freeform type, unread freeform values are never evaluated.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { freeformType = lib.types.lazyAttrsOf lib.types.int; options.a = lib.mkOption { default = 1; }; }
    { b = 2; c = throw "not read"; }
  ];
}).config.b
