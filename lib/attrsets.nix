# Attribute set helpers.
{ lib }:
let
  inherit (builtins) attrNames attrValues listToAttrs mapAttrs filter foldl' isAttrs length head tail;
in
rec {
  inherit (builtins) attrNames attrValues listToAttrs mapAttrs hasAttr getAttr removeAttrs
    intersectAttrs catAttrs zipAttrsWith;

  nameValuePair = name: value: { inherit name value; };
  mapAttrs' = f: set: listToAttrs (map (n: f n set.${n}) (attrNames set));
  mapAttrsToList = f: set: map (n: f n set.${n}) (attrNames set);
  concatMapAttrs = f: set: foldl' (acc: n: acc // f n set.${n}) { } (attrNames set);
  filterAttrs = pred: set:
    listToAttrs (lib.concatMap (n: let v = set.${n}; in if pred n v then [ { name = n; value = v; } ] else [ ]) (attrNames set));
  filterAttrsRecursive = pred: set:
    listToAttrs (lib.concatMap (n:
      let v = set.${n}; in
      if pred n v then [ { name = n; value = if isAttrs v then filterAttrsRecursive pred v else v; } ] else [ ])
      (attrNames set));
  genAttrs = names: f: listToAttrs (map (n: { name = n; value = f n; }) names);
  optionalAttrs = cond: set: if cond then set else { };
  zipAttrs = zipAttrsWith (_: vs: vs);
  mergeAttrs = a: b: a // b;
  foldAttrs = op: nul: list:
    foldl' (acc: set: acc // mapAttrs (n: v: op v (acc.${n} or nul)) set) { } (lib.reverseList list);

  isDerivation = x: isAttrs x && (x.type or null) == "derivation";

  attrByPath = path: default: set:
    if path == [ ] then set
    else if isAttrs set && set ? ${head path} then attrByPath (tail path) default set.${head path}
    else default;
  hasAttrByPath = path: set:
    path == [ ] || (isAttrs set && set ? ${head path} && hasAttrByPath (tail path) set.${head path});
  getAttrFromPath = path: set:
    let missing = { }; v = attrByPath path missing set; in
    if v == missing && !(hasAttrByPath path set)
    then throw "lib.getAttrFromPath: the attribute `${lib.concatStringsSep "." path}' does not exist"
    else v;
  setAttrByPath = path: value:
    if path == [ ] then value else { ${head path} = setAttrByPath (tail path) value; };

  recursiveUpdateUntil = pred: lhs: rhs:
    let
      f = path: zipAttrsWith (n: values:
        let p = path ++ [ n ]; in
        if length values == 1 || !(isAttrs (builtins.elemAt values 0) && isAttrs (builtins.elemAt values 1))
          || pred p (builtins.elemAt values 0) (builtins.elemAt values 1)
        then lib.last values
        else f p values);
    in
    f [ ] [ lhs rhs ];
  recursiveUpdate = recursiveUpdateUntil (_: l: r: !(isAttrs l && isAttrs r));

  mapAttrsRecursiveCond = cond: f: set:
    let
      go = path: s: mapAttrs (n: v:
        if isAttrs v && cond v then go (path ++ [ n ]) v else f (path ++ [ n ]) v) s;
    in
    go [ ] set;
  mapAttrsRecursive = mapAttrsRecursiveCond (_: true);

  collect = pred: v:
    if pred v then [ v ]
    else if isAttrs v then lib.concatMap (collect pred) (attrValues v)
    else [ ];

  attrsToList = set: map (n: { name = n; value = set.${n}; }) (attrNames set);
}
