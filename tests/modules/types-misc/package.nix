# package accepts derivations and store paths, only one definition.
let
  lib = import ../../../lib;
  drv = { type = "derivation"; name = "hello"; outPath = "${builtins.storeDir}/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-hello"; };
  t = lib.types.package;
in
{
  checks = map t.check [ drv "${builtins.storeDir}/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-hello" "${builtins.storeDir}/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-hello/bin" "/usr/bin" { } ];
  name = (lib.evalModules { modules = [ { options.p = lib.mkOption { type = t; }; } { p = drv; } ]; }).config.p.name;
}
