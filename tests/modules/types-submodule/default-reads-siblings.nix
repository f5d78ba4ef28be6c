# A sub-option's default may read the whole configuration, including other entries.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    ({ config, ... }: {
      options.users = lib.mkOption { type = lib.types.attrsOf (lib.types.submodule ({ name, ... }: {
        options.uid = lib.mkOption {
          type = lib.types.int;
          default = 1000 + lib.count (n: n < name) (builtins.attrNames config.users);
        };
      })); };
    })
    { users = { carol = { }; alice = { }; bob.uid = 5; }; }
  ];
}).config.users
