# extendModules keeps specialArgs and adds new ones.
let lib = import ../../../lib; in
let
  base = lib.evalModules { specialArgs.a = "A"; modules = [ ({ a, ... }: { options.a = lib.mkOption { default = a; }; }) ]; };
  more = base.extendModules { specialArgs.b = "B"; modules = [ ({ b, ... }: { options.b = lib.mkOption { default = b; }; }) ]; };
in
more.config
