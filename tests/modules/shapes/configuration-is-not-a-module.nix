# Importing the result of evalModules as a module is refused with a hint.
let
  lib = import ../../../lib;
  conf = lib.evalModules { modules = [ { options.x = lib.mkOption { default = 1; }; } ]; };
in
(lib.evalModules { modules = [ { key = "outer"; imports = [ conf ]; } ]; }).config
