# Submodule types merged by an optionType option keep the files that defined them, so a
# conflict between their options names both.
let lib = import ../../../lib; inherit (lib) mkOption types; in
(lib.evalModules { modules = [
  ({ config, ... }: {
    options.t = mkOption { type = types.optionType; };
    options.v = mkOption { type = config.t; default = { }; };
  })
  { _file = "a.nix"; t = types.submodule { options.n = mkOption { type = types.int; }; }; }
  { _file = "b.nix"; t = types.submodule { options.n = mkOption { type = types.str; }; }; }
]; }).config.v.n
