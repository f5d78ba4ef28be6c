# List helpers.
{ lib }:
let
  inherit (builtins) length elemAt genList foldl' filter concatLists;
in
rec {
  inherit (builtins) head tail elem filter concatMap concatLists map length elemAt genList
    foldl' any all sort partition listToAttrs;

  optional = cond: x: if cond then [ x ] else [ ];
  optionals = cond: xs: if cond then xs else [ ];
  toList = x: if builtins.isList x then x else [ x ];
  singleton = x: [ x ];

  foldr = op: nul: list:
    let
      len = length list;
      go = i: if i == len then nul else op (elemAt list i) (go (i + 1));
    in
    go 0;
  fold = foldr;
  foldl = op: foldl' op;

  flatten = x: if builtins.isList x then concatMap flatten x else [ x ];

  imap0 = f: list: genList (i: f i (elemAt list i)) (length list);
  imap1 = f: list: genList (i: f (i + 1) (elemAt list i)) (length list);

  range = first: last: if first > last then [ ] else genList (i: first + i) (last - first + 1);
  replicate = n: x: genList (_: x) n;

  last = list:
    if list == [ ] then throw "lib.last: the list is empty" else elemAt list (length list - 1);
  init = list:
    if list == [ ] then throw "lib.init: the list is empty" else take (length list - 1) list;
  take = n: sublist 0 n;
  drop = n: list: sublist n (length list) list;
  sublist = start: count: list:
    let
      len = length list;
      s = if start > len then len else start;
      n = if s + count > len then len - s else count;
    in
    genList (i: elemAt list (s + i)) n;
  reverseList = list: let len = length list; in genList (i: elemAt list (len - i - 1)) len;

  count = pred: foldl' (c: x: if pred x then c + 1 else c) 0;
  findFirst = pred: default: list:
    let found = filter pred list; in if found == [ ] then default else builtins.head found;
  findSingle = pred: default: multiple: list:
    let found = filter pred list; n = length found; in
    if n == 0 then default else if n == 1 then builtins.head found else multiple;

  # Keeps the first occurrence of each element, in order.
  unique = foldl' (acc: x: if builtins.elem x acc then acc else acc ++ [ x ]) [ ];
  subtractLists = remove: filter (x: !(builtins.elem x remove));
  intersectLists = a: filter (x: builtins.elem x a);
  remove = x: filter (y: y != x);

  zipListsWith = f: a: b:
    genList (i: f (elemAt a i) (elemAt b i)) (lib.min (length a) (length b));
  zipLists = zipListsWith (fst: snd: { inherit fst snd; });

  groupBy' = op: nul: key: foldl' (acc: x:
    let k = key x; in acc // { ${k} = op (acc.${k} or nul) x; }) { };
  groupBy = builtins.groupBy;

  sortOn = f: list:
    map (p: p.v) (builtins.sort (a: b: a.k < b.k) (map (v: { k = f v; inherit v; }) list));

  isListOf = pred: list: builtins.isList list && builtins.all pred list;
}
