# mkMergedOptionModule combines several old options into the new one.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    ../_shared/assertions.nix
    { options.address = lib.mkOption { type = lib.types.str; default = "none"; }; }
    (lib.mkMergedOptionModule [ [ "host" ] [ "port" ] ] [ "address" ] (config: "${config.host}:${toString config.port}"))
    { host = "example.org"; port = 443; }
  ];
}).config.address
