# Arguments from `_module.args` are passed when named, alongside the rest.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.b = lib.mkOption { }; config._module.args.pkgs = { hello = "hello-2.12"; }; }
    ({ pkgs, ... }@args: { b = [ pkgs.hello (args ? config) ]; })
  ];
}).config.b
