# The option record keeps the declaration's fields.
let lib = import ../../../lib; in
let o = (lib.evalModules {
  modules = [ { options.x = lib.mkOption {
    type = lib.types.int; default = 1; example = 2; description = "d";
    internal = true; visible = false; readOnly = true; defaultText = lib.literalExpression "one";
  }; } ];
}).options.x; in
{ inherit (o) default example description internal visible readOnly defaultText; }
