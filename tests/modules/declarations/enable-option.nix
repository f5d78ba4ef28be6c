# mkEnableOption declares a boolean that defaults to false.
let lib = import ../../../lib; in
let r = lib.evalModules { modules = [ { options.web.enable = lib.mkEnableOption "the web server"; } ]; }; in
{ value = r.config.web.enable; inherit (r.options.web.enable) description example default; type = r.options.web.enable.type.name; }
