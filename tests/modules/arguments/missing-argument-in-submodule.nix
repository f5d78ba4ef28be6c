# A submodule's module asking for a missing argument is reported like any module's.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { _file = "decl.nix"; options.s = lib.mkOption { type = lib.types.submodule ({ pkgs, ... }: { options.p = lib.mkOption { default = pkgs.hello; }; }); }; }
    { s = { }; }
  ];
}).config
