# A definition of an undeclared option names the option, the file and line, and close names.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.services.nginx.enable = lib.mkEnableOption "nginx"; }
    { services.nginx.enabel = true; }
  ];
}).config
