# Importing a file that does not exist fails and names the path.
let lib = import ../../../lib; in
(lib.evalModules { modules = [ { imports = [ ./missing-file.d/nope.nix ]; } ]; }).config
