# An option declared twice lists both files; an untyped option is "unspecified value".
let lib = import ../../../lib; in
map (e: { inherit (e) name type declarations; }) (lib.optionsToDocList { inherit ((lib.evalModules {
  modules = [ { _file = "a.nix"; options.x = lib.mkOption { description = "x"; }; } { _file = "b.nix"; options.x = lib.mkOption { type = lib.types.listOf lib.types.str; }; } { _file = "c.nix"; options.y = lib.mkOption { }; } ];
}).options) x y; })
