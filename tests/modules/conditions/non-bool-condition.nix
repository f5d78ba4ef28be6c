# A condition that is not a Boolean is an error naming the option and the file.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.x = lib.mkOption { type = lib.types.int; }; }
    { _file = "cond.nix"; x = lib.mkIf "yes" 1; }
  ];
}).config
