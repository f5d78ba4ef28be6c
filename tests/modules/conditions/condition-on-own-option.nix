# A condition may depend on the very set of options it defines into.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.web.enable = lib.mkEnableOption "web"; options.web.tls = lib.mkEnableOption "tls"; options.web.port = lib.mkOption { type = lib.types.int; default = 80; }; }
    ({ config, ... }: { web = lib.mkIf config.web.tls { port = 443; enable = true; }; })
    { web.tls = true; }
  ];
}).config
