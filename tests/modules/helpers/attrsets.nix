# The usual attribute-set helpers behave as in nixpkgs' lib.
let lib = import ../../../lib; in
{
  recursiveUpdate = lib.recursiveUpdate { a = { b = 1; c = 1; }; d = 1; } { a = { c = 2; }; d = { e = 1; }; };
  filterAttrs = lib.filterAttrs (n: v: v > 1) { a = 1; b = 2; };
  mapAttrsToList = lib.mapAttrsToList (n: v: "${n}=${toString v}") { b = 2; a = 1; };
  mapAttrs' = lib.mapAttrs' (n: v: lib.nameValuePair "x-${n}" (v * 2)) { a = 1; };
  genAttrs = lib.genAttrs [ "a" "b" ] (n: n + n);
  attrByPath = [ (lib.attrByPath [ "a" "b" ] 0 { a.b = 5; }) (lib.attrByPath [ "a" "c" ] 0 { a.b = 5; }) ];
  setAttrByPath = lib.setAttrByPath [ "a" "b" ] 1;
  hasAttrByPath = [ (lib.hasAttrByPath [ "a" "b" ] { a.b = null; }) (lib.hasAttrByPath [ "a" "x" ] { a.b = 1; }) ];
  optionalAttrs = [ (lib.optionalAttrs true { a = 1; }) (lib.optionalAttrs false { a = 1; }) ];
  concatMapAttrs = lib.concatMapAttrs (n: v: { ${n} = v; "${n}2" = v; }) { a = 1; };
  foldAttrs = lib.foldAttrs (item: acc: [ item ] ++ acc) [ ] [ { a = 2; } { a = 3; b = 1; } ];
  collect = lib.collect builtins.isInt { a = 1; b = { c = 2; d = "x"; }; };
  mapAttrsRecursive = lib.mapAttrsRecursive (path: v: lib.concatStringsSep "." path) { a.b = 1; c = 2; };
  zipAttrs = lib.zipAttrs [ { a = 1; } { a = 2; b = 3; } ];
  attrsToList = lib.attrsToList { b = 2; a = 1; };
}
