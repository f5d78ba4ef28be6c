# mkIf false around an entry removes it; around a leaf it keeps the entry with its default.
let lib = import ../../../lib; in
let
  decl = { options.subs = lib.mkOption { type = lib.types.attrsOf (lib.types.submodule { options.enable = lib.mkEnableOption "it"; }); default = { }; }; };
  eval = m: (lib.evalModules { modules = [ decl m ]; }).config.subs;
in
{
  whole = eval { config = lib.mkIf false { subs.foo.enable = true; }; };
  entry = eval { subs.foo = lib.mkIf false { enable = true; }; };
  leaf = eval { subs.foo.enable = lib.mkIf false true; };
}
