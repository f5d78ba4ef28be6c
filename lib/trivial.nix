# Small general-purpose functions.
{ lib }:
{
  id = x: x;
  const = x: _: x;
  flip = f: a: b: f b a;
  pipe = builtins.foldl' (x: f: f x);
  min = a: b: if a < b then a else b;
  max = a: b: if a > b then a else b;
  mod = a: b: a - b * (a / b);
  boolToString = b: if b then "true" else "false";

  inherit (builtins)
    isAttrs isBool isInt isFloat isList isString isPath
    typeOf seq deepSeq trace tryEval toJSON fromJSON;

  # Attribute sets with `__functor` are functions too (module functions often are).
  isFunction = f: builtins.isFunction f || (builtins.isAttrs f && f ? __functor && lib.isFunction (f.__functor f));
  functionArgs = f:
    if builtins.isAttrs f && f ? __functor then f.__functionArgs or (lib.functionArgs (f.__functor f))
    else builtins.functionArgs f;

  assertMsg = pred: msg: pred || throw msg;

  # Give a function the argument names of another (or explicit ones), so that the module system
  # can still see which module arguments it asks for.
  setFunctionArgs = f: args: {
    __functor = _: f;
    __functionArgs = args;
  };

  warn = msg: builtins.trace "warning: ${msg}";
  warnIf = cond: msg: if cond then lib.warn msg else x: x;
  throwIf = cond: msg: if cond then throw msg else x: x;
  throwIfNot = cond: msg: if cond then x: x else throw msg;
}
