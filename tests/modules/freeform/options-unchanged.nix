# Freeform values do not appear in `options`.
let lib = import ../../../lib; in
builtins.attrNames (lib.evalModules {
  modules = [ { freeformType = lib.types.attrsOf lib.types.str; options.a = lib.mkOption { default = ""; }; } { b = "x"; } ];
}).options
