# evalModules returns the configuration with options, config, _module, type and extendModules.
let
  lib = import ../../../lib;
  r = lib.evalModules { modules = [ { options.x = lib.mkOption { default = 1; }; } ]; };
in
{
  inherit (r) _type;
  names = builtins.attrNames r;
  moduleNames = builtins.attrNames r._module;
  typeName = r.type.name;
  extends = builtins.isFunction r.extendModules;
}
