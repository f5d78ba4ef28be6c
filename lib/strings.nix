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

  # Edit distance counting insertions, deletions, substitutions and swaps of two neighbouring
  # characters ("optimal string alignment"), for "did you mean" suggestions: a swap is the
  # most common typo (`enabel`, `ngnix`) and should cost one edit, not two. Only ever run on
  # error paths, so it favours clarity over speed.
  levenshtein = a: b:
    let
      ca = stringToCharacters a;
      cb = stringToCharacters b;
      la = builtins.length ca;
      lb = builtins.length cb;
      at = builtins.elemAt;
      # Rows of the distance table; row i covers the first i characters of `a`.
      row0 = builtins.genList (j: j) (lb + 1);
      nextRow = { prev2, prev, i }:
        let
          x = at ca (i - 1);
          row = builtins.foldl' (acc: j:
            let
              y = at cb (j - 1);
              cost = if x == y then 0 else 1;
              best = lib.min (lib.min (at prev j + 1) (lib.last acc + 1)) (at prev (j - 1) + cost);
              swapped = i > 1 && j > 1 && x == at cb (j - 2) && at ca (i - 2) == y;
            in
            acc ++ [ (if swapped then lib.min best (at prev2 (j - 2) + 1) else best) ])
            [ i ] (lib.range 1 lb);
        in
        { prev2 = prev; prev = row; i = i + 1; };
      final = builtins.foldl' (st: _: nextRow st) { prev2 = row0; prev = row0; i = 1; } ca;
    in
    if la == 0 then lb else lib.last final.prev;
}
