# undocumentedOptions names visible, non-internal options without a description.
let lib = import ../../../lib; in
lib.undocumentedOptions (lib.optionsToDocList (lib.evalModules {
  modules = [ {
    options.a = lib.mkOption { description = "documented"; };
    options.b = lib.mkOption { };
    options.c = lib.mkOption { description = ""; };
    options.d = lib.mkOption { internal = true; };
    options.e = lib.mkOption { visible = false; };
    options.s = lib.mkOption { description = "s"; type = lib.types.submodule { options.x = lib.mkOption { }; }; };
  } ];
}).options)
