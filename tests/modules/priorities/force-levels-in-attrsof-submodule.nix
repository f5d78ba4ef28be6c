# mkForce at each level of an attrsOf submodule overrides only what it wraps.
let lib = import ../../../lib; in
let
  decl = { options.subs = lib.mkOption { type = lib.types.attrsOf (lib.types.submodule { options.enable = lib.mkEnableOption "it"; }); default = { }; }; };
  base = { subs.foo.enable = true; subs.bar.enable = true; };
  eval = m: (lib.evalModules { modules = [ decl base m ]; }).config.subs;
in
{
  whole = eval { subs = lib.mkForce { foo.enable = false; }; };
  entry = eval { subs.foo = lib.mkForce { enable = false; }; };
  leaf = eval { subs.foo.enable = lib.mkForce false; };
}
