# mkAliasOptionModule forwards like a rename, without a warning, and is visible.
let lib = import ../../../lib; in
let r = lib.evalModules {
  modules = [
    ../_shared/assertions.nix
    { options.new = lib.mkOption { type = lib.types.int; }; }
    (lib.mkAliasOptionModule [ "short" ] [ "new" ])
    { short = 5; }
  ];
}; in
{ inherit (r.config) new warnings; visible = r.options.short.visible; }
