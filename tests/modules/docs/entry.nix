# optionsToDocList gives one entry per option with its documentation fields.
let lib = import ../../../lib; in
lib.optionsToDocList (lib.evalModules {
  modules = [ { _file = "web.nix"; options.web.port = lib.mkOption {
    type = lib.types.port; default = 80; example = 8080; description = "The port to listen on.";
  }; } ];
}).options.web
