# A submodule module may read the outer configuration through a closure.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    ({ config, ... }: {
      options.domain = lib.mkOption { type = lib.types.str; };
      options.hosts = lib.mkOption { type = lib.types.attrsOf (lib.types.submodule ({ name, ... }: {
        options.fqdn = lib.mkOption { default = "${name}.${config.domain}"; };
      })); };
    })
    { domain = "example.org"; hosts.www = { }; }
  ];
}).config.hosts
