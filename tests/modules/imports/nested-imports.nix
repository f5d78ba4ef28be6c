# Modules listed in `imports` (and their imports) are evaluated too.
let lib = import ../../../lib; in
(lib.evalModules { modules = [ { imports = [ ./nested-imports.d/a.nix ]; } ]; }).config
