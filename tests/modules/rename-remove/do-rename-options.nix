# doRename's optional arguments: `use` wraps what the old name reads, `withPriority = false`
# forwards definitions as plain ones, `condition` forwards only when it holds.
let
  lib = import ../../../lib;
  eval = rename: defs: (lib.evalModules {
    modules = [
      { options.new = lib.mkOption { type = lib.types.int; default = 0; };
        options.on = lib.mkOption { type = lib.types.bool; default = false; }; }
      rename
    ] ++ defs;
  }).config;
  base = { from = [ "old" ]; to = [ "new" ]; visible = true; warn = false; };
in
{
  used = (eval (lib.doRename (base // { use = x: x * 10; })) [ { old = 4; } ]).old;
  # At its priority a mkDefault loses to the plain definition of `new`...
  withPriority = (eval (lib.doRename base) [ { old = lib.mkDefault 1; new = 2; } ]).new;
  # ... as a plain definition it conflicts with it, so here the two agree.
  withoutPriority = (eval (lib.doRename (base // { withPriority = false; })) [ { old = lib.mkDefault 3; new = lib.mkDefault 2; } ]).new;
  conditionFalse = (eval (lib.doRename (base // { condition = false; })) [ { old = 5; } ]).new;
  conditionTrue = (eval ({ config, ... }: { imports = [ (lib.doRename (base // { condition = config.on; })) ]; }) [ { old = 6; on = true; } ]).new;
}
