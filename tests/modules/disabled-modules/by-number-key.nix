# Items that toString turns into a key (numbers, sets with __toString or outPath) disable
# the module with that key.
let
  lib = import ../../../lib;
  decl = { key = "decl"; options.x = lib.mkOption { default = "declared"; }; };
  numbered = { key = 7; config.x = "from 7"; };
  eval = disabled: (lib.evalModules { modules = [ decl numbered { disabledModules = disabled; } ]; }).config.x;
in
{
  kept = eval [ ];
  byNumber = eval [ 7 ];
  byToString = eval [ { __toString = _: "7"; } ];
}
