# A misspelt name deep in the tree is reported at the first unknown level, with close names.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.services.nginx.enable = lib.mkEnableOption "nginx"; }
    { services.ngnix.enable = true; }
  ];
}).config
