# Two declarations of one option combine their fields (type from one, default from the other).
let lib = import ../../../lib; in
let o = (lib.evalModules {
  modules = [
    { _file = "type.nix"; options.x = lib.mkOption { type = lib.types.int; }; }
    { _file = "default.nix"; options.x = lib.mkOption { default = 5; description = "The x."; }; }
  ];
}).options.x; in
{ inherit (o) value declarations description; type = o.type.description; }
