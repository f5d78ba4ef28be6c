# sonix's `unknownOptionHint`: the help after NixOS's first line comes from the caller (sonix's
# eval-config.nix names the on-demand module that declares the option), instead of close names.
let lib = import ../../../lib; in
(lib.evalModules {
  unknownOptionHint = path: if path == [ "services" "web" ] then "import web.nix" else "";
  modules = [
    { options.services.journal = lib.mkOption { default = 1; }; }
    { services.web.enable = true; }
  ];
}).config
