# literalExpression and literalMD pass through; other values are rendered as Nix.
let lib = import ../../../lib; in
map (e: { inherit (e) name; example = e.example or null; default = e.default or null; }) (lib.optionsToDocList (lib.evalModules {
  modules = [ {
    options.a = lib.mkOption { example = lib.literalExpression "pkgs.hello"; default = { x = [ 1 "s" ]; }; description = "a"; };
    options.b = lib.mkOption { example = lib.literalMD "Any *text*."; default = "multi\nline"; description = "b"; };
  } ];
}).options)
