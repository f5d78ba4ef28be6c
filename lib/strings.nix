# String helpers.
{ lib }:
let
  inherit (builtins) concatStringsSep stringLength substring replaceStrings filter isString;
in
rec {
  inherit (builtins) concatStringsSep stringLength substring replaceStrings toString match split;

  concatStrings = concatStringsSep "";
  concatMapStrings = f: list: concatStrings (map f list);
  concatMapStringsSep = sep: f: list: concatStringsSep sep (map f list);
  concatImapStrings = f: list: concatStrings (lib.imap1 f list);
  concatLines = list: concatMapStrings (s: s + "\n") list;
  optionalString = cond: s: if cond then s else "";

  hasPrefix = pre: s: substring 0 (stringLength pre) s == pre;
  hasSuffix = suf: s:
    let l = stringLength s; n = stringLength suf; in
    l >= n && substring (l - n) n s == suf;
  hasInfix = infix: s: builtins.match ".*${escapeRegex infix}.*" s != null;
  removePrefix = pre: s:
    if hasPrefix pre s then substring (stringLength pre) (stringLength s) s else s;
  removeSuffix = suf: s:
    if hasSuffix suf s then substring 0 (stringLength s - stringLength suf) s else s;

  splitString = sep: s: filter isString (builtins.split (escapeRegex sep) s);
  # Bracket expressions are the portable escape in POSIX extended regular expressions.
  escapeRegex = replaceStrings
    [ "\\" "[" "]" "{" "}" "(" ")" "." "*" "+" "?" "^" "$" "|" ]
    [ "\\\\" "[[]" "[]]" "[{]" "[}]" "[(]" "[)]" "[.]" "[*]" "[+]" "[?]" "\\^" "[$]" "[|]" ];

  lowerChars = lib.stringToCharacters "abcdefghijklmnopqrstuvwxyz";
  upperChars = lib.stringToCharacters "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
  toLower = replaceStrings upperChars lowerChars;
  toUpper = replaceStrings lowerChars upperChars;
  stringToCharacters = s: builtins.genList (i: substring i 1 s) (stringLength s);

  trim = s:
    let m = builtins.match "[[:space:]]*(.*[^[:space:]])[[:space:]]*" s; in
    if m == null then "" else builtins.head m;

  fixedWidthString = width: filler: s:
    let n = stringLength s; in
    if n >= width then s else fixedWidthString width filler (filler + s);
  fixedWidthNumber = width: n: fixedWidthString width "0" (toString n);

  isStringLike = x: isString x || builtins.isPath x || (builtins.isAttrs x && (x ? outPath || x ? __toString));

  escapeShellArg = arg:
    let s = toString arg; in
    if builtins.match "[[:alnum:],._+:@%/=-]+" s != null then s
    else "'${replaceStrings [ "'" ] [ "'\\''" ] s}'";
  escapeShellArgs = concatMapStringsSep " " escapeShellArg;

  escapeNixString = s: "\"${replaceStrings [ "\\" "\"" "\n" "\r" "\t" "\${" ] [ "\\\\" "\\\"" "\\n" "\\r" "\\t" "\\\${" ] s}\"";
  escapeNixIdentifier = s:
    if builtins.match "[a-zA-Z_][a-zA-Z0-9_'-]*" s != null
      && !(builtins.elem s [ "assert" "else" "if" "in" "inherit" "let" "or" "rec" "then" "with" ])
    then s else escapeNixString s;

  versionOlder = a: b: builtins.compareVersions a b < 0;
  versionAtLeast = a: b: !(versionOlder a b);

  # Levenshtein distance, for "did you mean" suggestions (only ever run on error paths).
  levenshtein = a: b:
    let
      ca = stringToCharacters a;
      cb = stringToCharacters b;
      lb = builtins.length cb;
      row0 = builtins.genList (j: j) (lb + 1);
      step = prev: x:
        builtins.foldl' (row: j:
          let
            y = builtins.elemAt cb (j - 1);
            cost = if x == y then 0 else 1;
            v = lib.min (lib.min (builtins.elemAt prev j + 1) (lib.last row + 1))
              (builtins.elemAt prev (j - 1) + cost);
          in row ++ [ v ]) [ (builtins.head prev + 1) ] (lib.range 1 lb);
    in
    lib.last (builtins.foldl' step row0 ca);
}
