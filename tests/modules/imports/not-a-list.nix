# `imports` must be a list.
let lib = import ../../../lib; in
(lib.evalModules { modules = [ { key = "single"; imports = ./not-a-list.nix; } ]; }).config
