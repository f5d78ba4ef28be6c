# Module arguments are looked up by name even when the function gives a default (as NixOS does).
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { _module.args.flavour = "given"; }
    ({ flavour ? "fallback", ... }: { options.f = lib.mkOption { default = flavour; }; })
  ];
}).config
