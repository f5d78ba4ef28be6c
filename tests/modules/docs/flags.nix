# internal, visible and readOnly are reported; invisible options' sub-options are not listed.
let lib = import ../../../lib; in
map (e: { inherit (e) name internal visible readOnly; }) (builtins.filter (e: builtins.head e.loc != "_module") (lib.optionsToDocList (lib.evalModules {
  modules = [ {
    options.hidden = lib.mkOption { visible = false; description = "h"; type = lib.types.submodule { options.inner = lib.mkOption { description = "i"; }; }; };
    options.shallow = lib.mkOption { visible = "shallow"; description = "s"; type = lib.types.submodule { options.inner = lib.mkOption { description = "i"; }; }; };
    options.internal = lib.mkOption { internal = true; description = "i"; };
    options.fixed = lib.mkOption { readOnly = true; default = 1; description = "f"; };
  } ];
}).options))
