# types.attrTag: one attribute, whose name (the tag) chooses the type of its value; several
# definitions of the same tag merge by that tag's type; declarations of an attrTag merge tags.
let
  lib = import ../../../lib;
  inherit (lib) mkOption types;
  listen = types.attrTag {
    port = mkOption { type = types.port; };
    socket = mkOption { type = types.str; };
    both = mkOption { type = types.attrTag { a = mkOption { type = types.int; }; }; };
  };
  eval = (lib.evalModules {
    modules = [
      { options.listen = mkOption { type = types.attrsOf listen; };
        options.flags = mkOption { type = types.attrTag { list = mkOption { type = types.listOf types.str; }; }; }; }
      { options.listen = mkOption { type = types.attrsOf (types.attrTag { path = mkOption { type = types.str; }; }); }; }
      { listen.web.port = 80;
        listen.api.socket = "/run/api";
        listen.nested.both.a = 1;
        listen.merged.path = "/p";
        flags.list = [ "a" ]; }
      { flags.list = [ "b" ]; }
    ];
  });
in
{
  inherit (eval.config) listen flags;
  description = eval.options.flags.type.description;
  subOptions = builtins.attrNames (eval.options.flags.type.getSubOptions [ "flags" ]);
}
