# float accepts floats only.
let lib = import ../../../lib; in
let t = lib.types.float; in
{ checks = map t.check [ 1.5 1 "1.5" ]; value = (lib.evalModules { modules = [ { options.f = lib.mkOption { type = t; }; } { f = 0.25; } ]; }).config.f; }
