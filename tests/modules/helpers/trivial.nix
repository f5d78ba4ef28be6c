# Small helpers: pipe, functionArgs of functors, isFunction, mod, boolToString.
let lib = import ../../../lib; in
{
  pipe = lib.pipe 2 [ (x: x + 1) (x: x * 10) ];
  functorArgs = lib.functionArgs (lib.setFunctionArgs (a: a) { x = false; y = true; });
  isFunction = [ (lib.isFunction (x: x)) (lib.isFunction { __functor = self: x: x; }) (lib.isFunction { }) ];
  mod = [ (lib.mod 7 3) (lib.mod (-7) 3) ];
  boolToString = lib.boolToString false;
  minMax = [ (lib.min 1 2) (lib.max 1 2) ];
}
