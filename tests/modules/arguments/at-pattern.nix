# A module written `args@{ ... }:` sees config, lib, options and specialArgs in `args` (as in NixOS).
let lib = import ../../../lib; in
(lib.evalModules {
  specialArgs.site = "lab";
  modules = [
    { options.a = lib.mkOption { default = 1; }; options.b = lib.mkOption { }; }
    ({ ... }@args: { b = [ args.config.a args.site (args ? lib) (args ? options) ]; })
  ];
}).config.b
