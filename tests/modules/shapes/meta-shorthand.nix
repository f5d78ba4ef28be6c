# A top-level `meta` is a definition of the `meta` option, in both forms.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.meta = lib.mkOption { type = lib.types.attrsOf lib.types.str; default = { }; }; }
    { meta.a = "shorthand"; }
    { meta.b = "full"; config = { }; }
  ];
}).config
