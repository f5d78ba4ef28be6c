# submoduleWith passes its specialArgs, and `name`, to the submodule's modules.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.m = lib.mkOption { type = lib.types.attrsOf (lib.types.submoduleWith {
        specialArgs.site = "lab";
        modules = [ ({ site, name, ... }: { options.id = lib.mkOption { default = "${site}-${name}"; }; }) ];
      }); }; }
    { m.x = { }; }
  ];
}).config
