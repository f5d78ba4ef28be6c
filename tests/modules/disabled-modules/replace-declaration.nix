# The usual use: disable a module and declare its option anew.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    ./replace-declaration.d/original.nix
    {
      disabledModules = [ ./replace-declaration.d/original.nix ];
      options.port = lib.mkOption { type = lib.types.port; default = 8080; };
    }
  ];
}).config
