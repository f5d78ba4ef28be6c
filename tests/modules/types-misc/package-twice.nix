# package: two definitions are an error even if equal.
let
  lib = import ../../../lib;
  drv = { type = "derivation"; name = "hello"; outPath = "${builtins.storeDir}/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-hello"; };
in
(lib.evalModules { modules = [ { options.p = lib.mkOption { type = lib.types.package; }; } { _file = "a.nix"; p = drv; } { _file = "b.nix"; p = drv; } ]; }).config
