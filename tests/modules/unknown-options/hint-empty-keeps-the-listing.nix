# When the caller's `unknownOptionHint` has nothing to say (""), the usual help is shown.
let lib = import ../../../lib; in
(lib.evalModules {
  unknownOptionHint = path: "";
  modules = [
    { options.services.journal = lib.mkOption { default = 1; }; }
    { services.jornal = 2; }
  ];
}).config
