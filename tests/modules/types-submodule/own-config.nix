# A submodule's `config` argument is the entry's own configuration.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.vhosts = lib.mkOption { type = lib.types.attrsOf (lib.types.submodule ({ name, config, ... }: {
        options.domain = lib.mkOption { type = lib.types.str; default = name; };
        options.url = lib.mkOption { type = lib.types.str; default = "https://${config.domain}/"; };
      })); }; }
    { vhosts.a.domain = "a.example"; vhosts.b = { }; }
  ];
}).config
