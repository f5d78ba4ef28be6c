# The usual string helpers behave as in nixpkgs' lib.
let lib = import ../../../lib; in
{
  concatMapStringsSep = lib.concatMapStringsSep ", " toString [ 1 2 ];
  concatLines = lib.concatLines [ "a" "b" ];
  optionalString = [ (lib.optionalString true "x") (lib.optionalString false "x") ];
  hasPrefix = [ (lib.hasPrefix "foo" "foobar") (lib.hasPrefix "bar" "foobar") ];
  hasSuffix = [ (lib.hasSuffix "bar" "foobar") (lib.hasSuffix "foobarx" "bar") ];
  hasInfix = [ (lib.hasInfix "o.b" "foo.bar") (lib.hasInfix "o.b" "foobar") (lib.hasInfix "b" "a\nb") ];
  removePrefix = lib.removePrefix "/usr" "/usr/bin";
  removeSuffix = lib.removeSuffix ".nix" "default.nix";
  splitString = [ (lib.splitString "." "a.b..c") (lib.splitString "," "") ];
  toUpper = lib.toUpper "abc-1";
  toLower = lib.toLower "ABC-1";
  trim = [ (lib.trim "  a b \n") (lib.trim " \t ") (lib.trim "a\nb\n") ];
  escapeShellArg = [ (lib.escapeShellArg "plain") (lib.escapeShellArg "it's here") ];
  escapeNixString = lib.escapeNixString "a\"b\${c}";
  fixedWidthNumber = lib.fixedWidthNumber 4 42;
  versionOlder = [ (lib.versionOlder "1.2" "1.10") (lib.versionAtLeast "2.0" "2.0") ];
  stringToCharacters = lib.stringToCharacters "abc";
}
