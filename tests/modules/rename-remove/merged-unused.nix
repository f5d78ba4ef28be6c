# mkMergedOptionModule does nothing while none of the old options is used.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    ../_shared/assertions.nix
    { options.address = lib.mkOption { type = lib.types.str; default = "none"; }; }
    (lib.mkMergedOptionModule [ [ "host" ] [ "port" ] ] [ "address" ] (config: "${config.host}:${toString config.port}"))
  ];
}).config.address
