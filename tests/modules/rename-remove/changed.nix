# mkChangedOptionModule turns the old option's value into the new option's, with a warning.
let lib = import ../../../lib; in
let c = (lib.evalModules {
  modules = [
    ../_shared/assertions.nix
    { options.web.listen = lib.mkOption { type = lib.types.listOf lib.types.str; default = [ ]; }; }
    (lib.mkChangedOptionModule [ "web" "port" ] [ "web" "listen" ] (config: [ "0.0.0.0:${toString config.web.port}" ]))
    { _file = "user.nix"; web.port = 8080; }
  ];
}).config; in
{ inherit (c.web) listen; inherit (c) warnings; }
