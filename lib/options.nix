# Declaring options, and the merge functions and message helpers that option types share.
{ lib }:
let
  inherit (builtins) length head tail all isAttrs isList isString isFunction isBool isInt
    isFloat isPath attrNames concatStringsSep map filter typeOf;
in
rec {
  # Declare an option. Every field is optional; see docs/module-system.md for their meaning.
  mkOption =
    { default ? null
    , defaultText ? null
    , example ? null
    , description ? null
    , relatedPackages ? null
    , type ? null
    , apply ? null
    , internal ? null
    , visible ? null
    , readOnly ? null
    } @ attrs:
    attrs // { _type = "option"; };

  mkEnableOption = name: mkOption {
    type = lib.types.bool;
    default = false;
    example = true;
    description = "Whether to enable ${name}.";
  };

  isOption = x: isAttrs x && (x._type or null) == "option";

  # Documentation values: shown verbatim (as Nix code or as Markdown) instead of a rendered value.
  literalExpression = text:
    if isString text then { _type = "literalExpression"; inherit text; }
    else throw "literalExpression expects a string with Nix code, not ${typeOf text}";
  literalMD = text:
    if isString text then { _type = "literalMD"; inherit text; }
    else throw "literalMD expects a string with Markdown, not ${typeOf text}";
  mdDoc = text: text;

  # `services.nginx.virtualHosts."example.org".root`
  showOption = loc: concatStringsSep "." (map (part:
    if part == "*" || builtins.match "<.*>" part != null || builtins.match "[[].*[]]" part != null
    then part
    else lib.escapeNixIdentifier part) loc);

  # Where a definition comes from: "file:line" when Nix knows the attribute's position in the
  # module's own file (or the module has no file name), else the module's file (`_file`) as
  # NixOS shows it: a module made by a helper has positions inside the helper, which would
  # point at the wrong place.
  showLocation = def:
    let
      pos = def.pos or null;
      file = toString (def.file or "<unknown-file>");
    in
    if pos != null && (toString pos.file == file || file == "<unknown-file>")
    then "${toString pos.file}:${toString pos.line}"
    else file;

  showFiles = files: concatStringsSep ", " (map (f: "`${toString f}'") files);

  # One line per definition: "- In `file:line': value".
  # Parts of a definition that fail to evaluate are shown as such (the error is about the
  # definition, not about what is wrong inside it).
  showDefs = defs: concatStringsSep "" (map (def:
    "\n- In `${showLocation def}': ${showValueWith { depth = 3; safe = true; } def.value}") defs);

  getValues = map (def: def.value);
  getFiles = map (def: def.file);

  prioritySuggestion = ''
    Use `lib.mkForce value` or `lib.mkDefault value` to change the priority of one of these definitions.'';

  # All definitions must be equal; the usual merge of scalar types.
  mergeEqualOption = loc: defs:
    if defs == [ ] then throw "The option `${showOption loc}' has no definitions to merge."
    else if length defs == 1 then (head defs).value
    else
      let first = head defs; in
      builtins.foldl' (acc: def:
        if def.value == first.value then acc
        else throw ''
          The option `${showOption loc}' has conflicting definition values:${showDefs defs}
          ${prioritySuggestion}'') first.value (tail defs);

  mergeUniqueOption = { message ? "", merge ? null }: loc: defs:
    if length defs == 1 then
      (if merge == null then (head defs).value else merge loc defs)
    else throw ''
      The option `${showOption loc}' is defined multiple times while it's expected to be unique.${lib.optionalString (message != "") "\n${message}"}
      Definition values:${showDefs defs}
      ${prioritySuggestion}'';
  mergeOneOption = mergeUniqueOption { };

  # The merge of `types.unspecified`: one definition, or a merge by the values' kind.
  mergeDefaultOption = loc: defs:
    let values = getValues defs; in
    if length defs == 1 then head values
    else if all isFunction values then x: mergeDefaultOption (loc ++ [ "<function body>" ])
      (map (def: def // { value = def.value x; }) defs)
    else if all isList values then builtins.concatLists values
    else if all isAttrs values then builtins.foldl' (a: b: a // b) { } values
    else if all isBool values then builtins.any (x: x) values
    else if all isString values then lib.concatStrings values
    else if all isInt values && all (x: x == head values) values then head values
    else throw "The option `${showOption loc}' has definitions that cannot be merged:${showDefs defs}\n${prioritySuggestion}";

  # Properties shown as the call that made them (`mkIf false (mkForce 1)`), so that messages
  # about definitions read like the module that wrote them; null for other values.
  propertyCall = v:
    let
      t = v._type or null;
      arg = x: let s = showValueShort x; in
        if isAttrs x && builtins.elem (x._type or null) [ "if" "merge" "override" "order" ] then "(${s})" else s;
      named = { "50" = "mkForce"; "1000" = "mkDefault"; "1500" = "mkOptionDefault"; };
      ordered = { "500" = "mkBefore"; "1500" = "mkAfter"; };
    in
    if t == "if" then "mkIf ${showValueShort v.condition} ${arg v.content}"
    else if t == "merge" then "mkMerge ${showValueShort v.contents}"
    else if t == "override" then
      (named.${toString v.priority} or "mkOverride ${toString v.priority}") + " ${arg v.content}"
    else if t == "order" then
      (ordered.${toString v.priority} or "mkOrder ${toString v.priority}") + " ${arg v.content}"
    else null;

  # For values that nothing has evaluated yet (undeclared options' definitions): a value that
  # fails must not replace the message that shows it.
  showValueSafe = v:
    let r = builtins.tryEval (let s = showValueShort v; in builtins.seq s s); in
    if r.success then r.value else "<a value that fails to evaluate>";

  # Nix-like rendering of values, for messages (short) and documentation (full).
  showValueShort = v: showValueWith { depth = 3; } v;
  showValue = v: showValueWith { } v;

  showValueWith = { depth ? 100, indent ? "", safe ? false }: v:
    let
      next = { depth = depth - 1; indent = indent + "  "; inherit safe; };
      t = typeOf v;
      inner = x:
        if !safe then showValueWith next x
        else
          let r = builtins.tryEval (let s = showValueWith next x; in builtins.seq s s); in
          if r.success then r.value else "<a value that fails to evaluate>";
    in
    if t == "string" then
      (if builtins.match ".*\n.*" v != null && indent != "x"
       then "''\n${concatStringsSep "\n" (map (l: if l == "" then "" else "${indent}  ${l}") (lib.splitString "\n" (builtins.replaceStrings [ "''" "\${" ] [ "'''" "''\${" ] v)))}${indent}''"
       else lib.escapeNixString v)
    else if t == "int" || t == "float" then toString v
    else if t == "bool" then lib.boolToString v
    else if t == "null" then "null"
    else if t == "path" then toString v
    else if t == "lambda" then "<function>"
    else if t == "list" then
      (if v == [ ] then "[ ]"
       else if depth <= 0 then "[ ... ]"
       else "[ ${concatStringsSep " " (map inner v)} ]")
    else if t == "set" then
      (if (v._type or null) == "literalExpression" || (v._type or null) == "literalMD" then v.text
       else if propertyCall v != null then propertyCall v
       else if (v._type or null) == "option-type" then "<option type: ${v.description}>"
       else if lib.isDerivation v then "<derivation ${v.name or "?"}>"
       else if v ? outPath then toString v.outPath
       else if v == { } then "{ }"
       else if depth <= 0 then "{ ... }"
       else "{ ${concatStringsSep " " (map (n: "${lib.escapeNixIdentifier n} = ${inner v.${n}};") (attrNames v))} }")
    else "<${t}>";
}
