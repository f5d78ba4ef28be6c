# mkRemovedOptionModule adds a failing assertion when the removed option is set.
let lib = import ../../../lib; in
let c = (lib.evalModules {
  modules = [
    ../_shared/assertions.nix
    (lib.mkRemovedOptionModule [ "services" "legacy" ] "Use services.modern instead.")
    { _file = "user.nix"; services.legacy = true; }
  ];
}).config; in
lib.checkAssertWarn c "unreachable"
