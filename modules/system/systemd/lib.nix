# Helpers for the modules that write systemd-style INI files (units, networkd files, repart
# definitions, the daemons' .conf.d drop-ins). Not a module: `import ./lib.nix { inherit lib; }`.
{ lib }:
let
  inherit (lib) types mkOption concatStrings concatStringsSep concatMap attrNames filter
    toList isBool substring stringLength;

  # Printable ASCII, for systemd-escape's \xNN: index i is character code 32 + i.
  printable = " !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~";
  hexDigits = "0123456789abcdef";
  hex = n: substring (n / 16) 1 hexDigits + substring (lib.mod n 16) 1 hexDigits;
  escapes = builtins.listToAttrs (builtins.genList (i: {
    name = substring i 1 printable;
    value = "\\x" + hex (32 + i);
  }) (stringLength printable));
in
rec {
  # One value in an INI file: `true`/`false`, a number or a string; a list repeats the key.
  unitScalar = types.oneOf [ types.bool types.int types.str ];
  unitValue = types.nullOr (types.either unitScalar (types.listOf unitScalar));

  renderScalar = v: if isBool v then lib.boolToString v else toString v;

  # "[Name]\nKey=value\n..." with keys sorted; null values are left out, lists repeat the key
  # (in order, so `ExecStart = [ "" "/usr/bin/x" ]` resets and sets). "" when nothing is set.
  renderSection = name: attrs:
    let
      lines = concatMap (k:
        let v = attrs.${k}; in
        if v == null then [ ] else map (x: "${k}=${renderScalar x}\n") (toList v)) (attrNames attrs);
    in
    if lines == [ ] then "" else "[${name}]\n" + concatStrings lines;

  # A daemon's configuration drop-in (journald.conf.d, resolved.conf.d, timesyncd.conf.d, ...):
  # the section with the set keys (sorted), then the extra lines as given (the module's
  # extraConfig); the header alone when nothing is set, so the file always names its section.
  renderDropin = section: attrs: extra:
    let body = renderSection section attrs; in
    (if body == "" then "[${section}]\n" else body)
    + lib.optionalString (extra != "") (if lib.hasSuffix "\n" extra then extra else extra + "\n");

  # Sections in the given order ([ { name; attrs; } ]), separated by blank lines.
  renderIni = sections:
    concatStringsSep "\n" (filter (s: s != "") (map (s: renderSection s.name s.attrs) sections));

  # Adds list values in front of what `attrs.<key>` already has (one line per value).
  prependList = key: values: attrs:
    if values == [ ] then attrs
    else attrs // { ${key} = values ++ (if (attrs.${key} or null) == null then [ ] else toList attrs.${key}); };

  # An INI section option: attrs of unit values, documented once.
  sectionOption = { section, what, example ? null }: mkOption ({
    type = types.attrsOf unitValue;
    default = { };
    description = ''
      Settings of the `[${section}]` section of ${what}, by key. Values are strings, integers,
      Booleans (`true`/`false`) or lists of them (one `Key=` line per element, in order; an
      empty string first resets the key). `null` leaves the key out.
    '';
  } // lib.optionalAttrs (example != null) { inherit example; });

  # systemd-escape --path: "/var/lib/my data" -> "var-lib-my\x20data".
  escapeSystemdPath = path:
    let
      parts = filter (p: p != "") (lib.splitString "/" path);
      escapeChar = i: c:
        if builtins.match "[A-Za-z0-9:_]" c != null || (c == "." && i > 0) then c
        else escapes.${c} or c;
      joined = concatStringsSep "/" parts;
    in
    if parts == [ ] then "-"
    else concatStrings (lib.imap0 (i: c: if c == "/" then "-" else escapeChar i c) (lib.stringToCharacters joined));

  # "foo@bar.service" -> "foo@.service": what an instance's .wants/ link points to.
  linkTarget = unit:
    let m = builtins.match "([^@]+@).*(\\.[a-z]+)" unit; in
    if m == null then unit else builtins.elemAt m 0 + builtins.elemAt m 1;

  # Environment="KEY=value" with systemd's quoting (backslash, double quote) and % doubled
  # (specifiers).
  quoteEnvironment = name: value:
    "\"" + builtins.replaceStrings [ "\\" "\"" "%" ] [ "\\\\" "\\\"" "%%" ] "${name}=${toString value}" + "\"";
}
