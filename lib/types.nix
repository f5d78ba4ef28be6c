# Option types. Each type is an attribute set made by `mkOptionType`:
#   name, description      what the docs and error messages call it
#   check value            whether one definition's value is acceptable
#   merge loc defs         the option's value from its checked definitions [{ file; value; }]
#   emptyValue             { value = ...; } for lazy containers, or { }
#   getSubOptions prefix   options below this type, for documentation (submodules)
#   getSubModules          the modules of a submodule type, or null
#   substSubModules m      the same type with other submodules (declaration merging)
#   typeMerge functor      the merge of two declarations' types, or null when they conflict
#   functor                what typeMerge needs: { name; type; wrapped; payload; binOp; }
#   singleDefIsValue       true when merging a single definition returns its value unchanged
#                          (lets containers skip the full merge for plain elements)
{ lib }:
let
  inherit (builtins) isString isInt isBool isFloat isList isAttrs isPath length
    head elemAt all any filter concatLists attrNames mapAttrs zipAttrsWith typeOf;
  inherit (lib) showOption showFiles getFiles getValues mergeEqualOption mergeOneOption
    mergeDefaultOption mergeDefinitions isStringLike imap1 concatMapStringsSep boolToString isFunction;

  defaultFunctor = name: {
    inherit name;
    type = types.${name} or null;
    wrapped = null;
    payload = null;
    binOp = _: _: null;
  };

  # Two declarations of one option may use "the same" type: same name, and mergeable payloads
  # (enums join their values, submodules their modules) or mergeable wrapped types.
  defaultTypeMerge = f: f':
    if f.name != f'.name then null
    else if f.payload != null then
      (let p = f.binOp f.payload f'.payload; in if p == null then null else f.type p)
    else if f.wrapped != null then
      (let w = f.wrapped.typeMerge f'.wrapped.functor; in if w == null then null else f.type w)
    else f.type;

  # A type's description inside another's, in parentheses unless the outer type says that the
  # inner one's kind of phrase reads unambiguously there. Classes (as in NixOS): "noun"
  # ("string"), "conjunction" ("int or string"), "composite" ("list of string"),
  # "nonRestrictiveClause" ("positive integer, meaning >0"); types without one always get
  # parentheses ("list of (attribute set)").
  phrase = fits: t:
    if builtins.elem (t.descriptionClass or null) fits then t.description else "(${t.description})";

  showEnumValue = v:
    if isString v then "\"${v}\"" else if isInt v then toString v
    else if isBool v then boolToString v else if v == null then "null" else "<${typeOf v}>";

  isStorePath = x:
    isStringLike x
    && (let s = toString x; d = "${builtins.storeDir}/"; in
        lib.hasPrefix d s && builtins.match "[^/]+" (lib.removePrefix d s) != null);

  mkOptionType =
    { name
    , description ? null
    , descriptionClass ? null
    , check ? (_: true)
    , merge ? mergeDefaultOption
    , emptyValue ? { }
    , getSubOptions ? (_: { })
    , getSubModules ? null
    , substSubModules ? (_: null)
    , functor ? defaultFunctor name
    , typeMerge ? defaultTypeMerge functor
    , nestedTypes ? { }
    , singleDefIsValue ? false
    , deprecationMessage ? null
    }: {
      _type = "option-type";
      inherit name check merge emptyValue getSubOptions getSubModules substSubModules functor
        typeMerge nestedTypes singleDefIsValue descriptionClass deprecationMessage;
      description = if description == null then name else description;
    };

  # A type whose values are compared, not combined: all definitions must agree.
  scalar = name: description: check: mkOptionType {
    inherit name description check;
    descriptionClass = "noun";
    merge = mergeEqualOption;
    singleDefIsValue = true;
  };

  intBetween = name: description: lo: hi: mkOptionType {
    inherit name;
    description = "${description}between ${toString lo} and ${toString hi} (both inclusive)";
    descriptionClass = "noun";
    check = x: isInt x && x >= lo && x <= hi;
    merge = mergeEqualOption;
    singleDefIsValue = true;
    functor = defaultFunctor name // {
      # Merging two declarations gives back the same kind of type (a port stays a port).
      type = payload: intBetween name description payload.lo payload.hi;
      payload = { inherit lo hi; };
      binOp = a: b: if a == b then a else null;
    };
  };

  # Merge one element of a container, fast when the element is a plain value of a simple type.
  mergeElement = loc: elemType: def:
    let v = def.value; in
    if elemType.singleDefIsValue && !(isAttrs v && v ? _type) && elemType.check v
    then { value = v; }
    else (mergeDefinitions loc elemType [ def ]).optionalValue;

  zipDefsByName = defs:
    zipAttrsWith (_: ds: ds) (map (def:
      mapAttrs (n: v: { inherit (def) file; value = v; pos = builtins.unsafeGetAttrPos n def.value; })
        def.value) defs);

  types = rec {
    inherit mkOptionType isStorePath defaultFunctor defaultTypeMerge;
    isType = name: t: isAttrs t && (t._type or null) == "option-type" && t.name == name;

    raw = mkOptionType {
      name = "raw";
      description = "raw value";
      descriptionClass = "noun";
      merge = mergeOneOption;
      singleDefIsValue = true;
    };

    anything = mkOptionType {
      name = "anything";
      description = "anything";
      descriptionClass = "noun";
      check = _: true;
      merge = loc: defs:
        let
          kind = v: if isAttrs v && isStringLike v then "stringLike" else typeOf v;
          first = kind (head defs).value;
          common =
            if all (def: kind def.value == first) defs then first
            else throw "The option `${showOption loc}' has conflicting option types in ${showFiles (getFiles defs)}\nIts definitions are of different kinds (${lib.concatStringsSep ", " (lib.unique (map (def: kind def.value) defs))}) that cannot be merged:${lib.showDefs defs}\n${lib.prioritySuggestion}";
        in
        if common == "set" then (attrsOf anything).merge loc defs
        else if common == "list" then
          (if length defs > 1
           then throw "The option `${showOption loc}' has conflicting definitions, in ${showFiles (getFiles defs)}.\nAn option of type `anything' takes one list definition; lists are only merged by typed options:${lib.showDefs defs}\n${lib.prioritySuggestion}"
           else (listOf anything).merge loc defs)
        else if common == "lambda" then
          x: anything.merge (loc ++ [ "<function body>" ]) (map (def: def // { value = def.value x; }) defs)
        else if common == "stringLike" then mergeOneOption loc defs
        else mergeEqualOption loc defs;
    };

    unspecified = mkOptionType {
      name = "unspecified";
      description = "unspecified value";
      descriptionClass = "noun";
      singleDefIsValue = true;
    };

    bool = scalar "bool" "boolean" isBool;
    # Any definition `true` makes it true (for options that several modules may switch on).
    boolByOr = mkOptionType {
      name = "boolByOr";
      description = "boolean (merged using or)";
      descriptionClass = "noun";
      check = isBool;
      merge = _: defs: builtins.any (def: def.value) defs;
      singleDefIsValue = true;
    };
    int = scalar "int" "signed integer" isInt;
    float = scalar "float" "floating point number" isFloat;
    number = scalar "number" "signed integer or floating point number" (x: isInt x || isFloat x)
      // { descriptionClass = "conjunction"; };

    ints = rec {
      between = lo: hi:
        if lo > hi then throw "types.ints.between: the lower bound ${toString lo} is above the upper bound ${toString hi}"
        else intBetween "intBetween" "integer " lo hi;
      unsigned = mkOptionType {
        name = "unsignedInt";
        description = "unsigned integer, meaning >=0";
        descriptionClass = "nonRestrictiveClause";
        check = x: isInt x && x >= 0;
        merge = mergeEqualOption;
        singleDefIsValue = true;
      };
      positive = mkOptionType {
        name = "positiveInt";
        description = "positive integer, meaning >0";
        descriptionClass = "nonRestrictiveClause";
        check = x: isInt x && x > 0;
        merge = mergeEqualOption;
        singleDefIsValue = true;
      };
      u8 = intBetween "unsignedInt8" "8 bit unsigned integer; " 0 255;
      u16 = intBetween "unsignedInt16" "16 bit unsigned integer; " 0 65535;
      u32 = intBetween "unsignedInt32" "32 bit unsigned integer; " 0 4294967295;
      s8 = intBetween "signedInt8" "8 bit signed integer; " (-128) 127;
      s16 = intBetween "signedInt16" "16 bit signed integer; " (-32768) 32767;
      s32 = intBetween "signedInt32" "32 bit signed integer; " (-2147483648) 2147483647;
    };
    port = ints.u16;

    numbers = {
      between = lo: hi: mkOptionType {
        name = "numberBetween";
        description = "integer or floating point number between ${toString lo} and ${toString hi} (both inclusive)";
        descriptionClass = "conjunction";
        check = x: (isInt x || isFloat x) && x >= lo && x <= hi;
        merge = mergeEqualOption;
        singleDefIsValue = true;
      };
      nonnegative = scalar "numberNonnegative" "nonnegative integer or floating point number, meaning >=0"
        (x: (isInt x || isFloat x) && x >= 0) // { descriptionClass = "nonRestrictiveClause"; };
      positive = scalar "numberPositive" "positive integer or floating point number, meaning >0"
        (x: (isInt x || isFloat x) && x > 0) // { descriptionClass = "nonRestrictiveClause"; };
    };

    str = scalar "str" "string" isString;
    # One line, optionally ending with a newline, which the value drops.
    singleLineStr = mkOptionType {
      name = "singleLineStr";
      description = "(optionally newline-terminated) single-line string";
      descriptionClass = "noun";
      check = x: isString x && builtins.match "[^\n\r]*\n?" x != null;
      merge = loc: defs: lib.removeSuffix "\n" (mergeEqualOption loc defs);
    };
    nonEmptyStr = mkOptionType {
      name = "nonEmptyStr";
      description = "non-empty string";
      descriptionClass = "noun";
      check = x: isString x && builtins.match "[[:space:]]*" x == null;
      merge = mergeEqualOption;
      singleDefIsValue = true;
    };
    strMatching = pattern: mkOptionType {
      name = "strMatching ${lib.escapeNixString pattern}";
      description = "string matching the pattern ${pattern}";
      descriptionClass = "noun";
      check = x: isString x && builtins.match pattern x != null;
      merge = mergeEqualOption;
      singleDefIsValue = true;
    };
    separatedString = sep: mkOptionType {
      name = "separatedString";
      description =
        if sep == "" then "Concatenated string"
        else "strings concatenated with ${lib.escapeNixString sep}";
      descriptionClass = "noun";
      check = isString;
      merge = _: defs: lib.concatStringsSep sep (getValues defs);
      singleDefIsValue = true;
      functor = defaultFunctor "separatedString" // {
        type = types.separatedString;
        payload = sep;
        binOp = a: b: if a == b then a else null;
      };
    };
    lines = separatedString "\n";
    commas = separatedString ",";
    envVar = separatedString ":";
    string = separatedString "";

    passwdEntry = entryType: addCheck entryType (x: isString x && builtins.match ".*[:\n].*" x == null)
      // {
        name = "passwdEntry ${entryType.name}";
        description = "${phrase [ "noun" ] entryType}, not containing newlines or colons";
        descriptionClass = "nonRestrictiveClause";
      };

    path = mkOptionType {
      name = "path";
      description = "path";
      descriptionClass = "noun";
      check = x: isStringLike x && builtins.substring 0 1 (toString x) == "/";
      merge = mergeEqualOption;
      singleDefIsValue = true;
    };

    pathInStore = mkOptionType {
      name = "pathInStore";
      description = "path in the Nix store";
      descriptionClass = "noun";
      check = x: isStringLike x && builtins.match "${builtins.storeDir}/[^.].*" (toString x) != null;
      merge = mergeEqualOption;
      singleDefIsValue = true;
    };

    package = mkOptionType {
      name = "package";
      description = "package";
      descriptionClass = "noun";
      check = x: lib.isDerivation x || isStorePath x;
      merge = mergeOneOption;
      singleDefIsValue = true;
    };

    attrs = mkOptionType {
      name = "attrs";
      description = "attribute set";
      check = isAttrs;
      merge = _: defs: builtins.foldl' (acc: def: acc // def.value) { } defs;
      emptyValue = { value = { }; };
    };

    enum = values:
      mkOptionType {
        name = "enum";
        description =
          if values == [ ] then "impossible (empty enum)"
          else if length values == 1 then "value ${showEnumValue (head values)} (singular enum)"
          else "one of ${concatMapStringsSep ", " showEnumValue values}";
        descriptionClass = if length values < 2 then "noun" else "conjunction";
        check = x: builtins.elem x values;
        merge = mergeEqualOption;
        singleDefIsValue = true;
        functor = defaultFunctor "enum" // {
          type = types.enum;
          payload = values;
          binOp = a: b: lib.unique (a ++ b);
        };
      };

    listOf = elemType: mkOptionType {
      name = "listOf";
      description = "list of ${phrase [ "noun" "composite" ] elemType}";
      descriptionClass = "composite";
      check = isList;
      merge = loc: defs:
        if elemType.singleDefIsValue && all (def: all (v: !(isAttrs v && v ? _type) && elemType.check v) def.value) defs
        then builtins.concatMap (def: def.value) defs
        else map (x: x.value) (filter (x: x ? value) (concatLists (imap1 (n: def:
          imap1 (m: v: mergeElement (loc ++ [ "[definition ${toString n}-entry ${toString m}]" ]) elemType
            { inherit (def) file; value = v; pos = def.pos or null; }) def.value) defs)));
      emptyValue = { value = [ ]; };
      getSubOptions = prefix: elemType.getSubOptions (prefix ++ [ "*" ]);
      getSubModules = elemType.getSubModules;
      substSubModules = m: listOf (elemType.substSubModules m);
      functor = defaultFunctor "listOf" // { wrapped = elemType; };
      nestedTypes.elemType = elemType;
    };

    nonEmptyListOf = elemType:
      let list = addCheck (listOf elemType) (l: l != [ ]); in
      list // {
        description = "non-empty ${phrase [ "noun" ] list}";
        emptyValue = { };
        substSubModules = m: nonEmptyListOf (elemType.substSubModules m);
      };

    attrsOf = elemType: mkOptionType {
      name = "attrsOf";
      description = "attribute set of ${phrase [ "noun" "composite" ] elemType}";
      descriptionClass = "composite";
      check = isAttrs;
      # Keys whose definitions all vanish (mkIf false) are left out, which means every value's
      # conditions are evaluated to list the keys; lazyAttrsOf avoids that.
      merge = loc: defs:
        if length defs == 1 && elemType.singleDefIsValue
          && all (v: !(isAttrs v && v ? _type) && elemType.check v) (builtins.attrValues (head defs).value)
        then (head defs).value
        else mapAttrs (_: v: v.value) (lib.filterAttrs (_: v: v ? value)
          (builtins.mapAttrs (name: ds:
            if length ds == 1 then mergeElement (loc ++ [ name ]) elemType (head ds)
            else (mergeDefinitions (loc ++ [ name ]) elemType ds).optionalValue)
            (zipDefsByName defs)));
      emptyValue = { value = { }; };
      getSubOptions = prefix: elemType.getSubOptions (prefix ++ [ "<name>" ]);
      getSubModules = elemType.getSubModules;
      substSubModules = m: attrsOf (elemType.substSubModules m);
      functor = defaultFunctor "attrsOf" // { wrapped = elemType; };
      nestedTypes.elemType = elemType;
    };

    lazyAttrsOf = elemType: mkOptionType {
      name = "lazyAttrsOf";
      description = "lazy attribute set of ${phrase [ "noun" "composite" ] elemType}";
      descriptionClass = "composite";
      check = isAttrs;
      merge = loc: defs:
        builtins.mapAttrs (name: ds:
          let r = mergeDefinitions (loc ++ [ name ]) elemType ds; in
          if r.isDefined then r.mergedValue
          else elemType.emptyValue.value or r.mergedValue)
          (zipDefsByName defs);
      emptyValue = { value = { }; };
      getSubOptions = prefix: elemType.getSubOptions (prefix ++ [ "<name>" ]);
      getSubModules = elemType.getSubModules;
      substSubModules = m: lazyAttrsOf (elemType.substSubModules m);
      functor = defaultFunctor "lazyAttrsOf" // { wrapped = elemType; };
      nestedTypes.elemType = elemType;
    };

    # An attribute set with exactly one attribute, whose name (the tag) chooses the type of its
    # value: `attrTag { port = mkOption { type = port; }; socket = mkOption { type = path; }; }`
    # takes `{ port = 80; }` or `{ socket = "/run/s"; }`. Each tag is an option, so that it
    # can be documented like one.
    attrTag = tags:
      let
        checked = builtins.mapAttrs (n: opt:
          if lib.isOption opt then opt
          else if isAttrs opt && (opt._type or null) == "option-type" then
            throw "In attrTag, each tag value must be an option, but tag ${n} was a bare type, not wrapped in mkOption."
          else throw "In attrTag, each tag value must be an option, but tag ${n} was ${builtins.typeOf opt}.") tags;
        tagOf = v: head (attrNames v);
      in
      mkOptionType {
        name = "attrTag";
        description = "attribute-tagged union with choices: ${lib.concatStringsSep ", " (attrNames tags)}";
        descriptionClass = "noun";
        check = v: isAttrs v && length (attrNames v) == 1 && tags ? ${tagOf v};
        merge = loc: defs:
          let
            tag = tagOf (head defs).value;
            others = filter (d: tagOf d.value != tag) defs;
            opt = checked.${tag};
            tagDefs = map (d: { inherit (d) file; pos = d.pos or null; value = d.value.${tag}; }) defs;
            merged = mergeDefinitions (loc ++ [ tag ]) (opt.type or unspecified)
              ((if opt ? default then [ { file = "<default of tag ${tag}>"; pos = null; value = lib.mkOptionDefault opt.default; } ] else [ ]) ++ tagDefs);
          in
          if others != [ ] then
            throw "The option `${showOption loc}' has definitions with different tags (${lib.concatStringsSep ", " (lib.unique (map (d: tagOf d.value) defs))}) of an attribute-tagged union:${lib.showDefs defs}"
          else { ${tag} = merged.mergedValue; };
        getSubOptions = prefix: builtins.mapAttrs (n: opt: opt // {
          loc = prefix ++ [ n ];
          declarations = opt.declarations or [ ];
        }) checked;
        nestedTypes = builtins.mapAttrs (_: opt: opt.type or unspecified) checked;
        functor = defaultFunctor "attrTag" // {
          type = attrTag;
          payload = checked;
          binOp = a: b:
            let
              mergeTag = n:
                if !(a ? ${n}) then b.${n}
                else if !(b ? ${n}) then a.${n}
                else
                  let t = (a.${n}.type or unspecified).typeMerge (b.${n}.type or unspecified).functor; in
                  if t == null then null else a.${n} // b.${n} // { type = t; };
              merged = lib.genAttrs (lib.unique (attrNames a ++ attrNames b)) mergeTag;
            in
            if lib.any (t: t == null) (builtins.attrValues merged) then null else merged;
        };
      };

    # One definition only, however the element type would merge.
    uniq = unique { message = ""; };
    unique = { message }: elemType: mkOptionType {
      name = "unique";
      inherit (elemType) description descriptionClass check emptyValue getSubOptions getSubModules;
      merge = lib.mergeUniqueOption { inherit message; inherit (elemType) merge; };
      substSubModules = m: unique { inherit message; } (elemType.substSubModules m);
      functor = defaultFunctor "unique" // { type = unique { inherit message; }; wrapped = elemType; };
      nestedTypes.elemType = elemType;
    };

    nullOr = elemType: mkOptionType {
      name = "nullOr";
      description = "null or ${phrase [ "noun" "conjunction" ] elemType}";
      descriptionClass = "conjunction";
      check = x: x == null || elemType.check x;
      merge = loc: defs:
        let nulls = lib.count (def: def.value == null) defs; in
        if nulls == length defs then null
        else if nulls != 0 then
          throw "The option `${showOption loc}' is defined both null and not null:${lib.showDefs defs}\n${lib.prioritySuggestion}"
        else elemType.merge loc defs;
      emptyValue = { value = null; };
      singleDefIsValue = elemType.singleDefIsValue;
      getSubOptions = elemType.getSubOptions;
      getSubModules = elemType.getSubModules;
      substSubModules = m: nullOr (elemType.substSubModules m);
      functor = defaultFunctor "nullOr" // { wrapped = elemType; };
      nestedTypes.elemType = elemType;
    };

    functionTo = elemType: mkOptionType {
      name = "functionTo";
      description = "function that evaluates to a(n) ${phrase [ "noun" "composite" ] elemType}";
      descriptionClass = "composite";
      check = isFunction;
      merge = loc: defs: arg:
        (mergeDefinitions (loc ++ [ "<function body>" ]) elemType
          (map (def: { inherit (def) file; value = def.value arg; }) defs)).mergedValue;
      getSubOptions = prefix: elemType.getSubOptions (prefix ++ [ "<function body>" ]);
      getSubModules = elemType.getSubModules;
      substSubModules = m: functionTo (elemType.substSubModules m);
      functor = defaultFunctor "functionTo" // { wrapped = elemType; };
      nestedTypes.elemType = elemType;
    };

    either = t1: t2: mkOptionType rec {
      name = "either";
      description =
        if (t1.descriptionClass or null) == "nonRestrictiveClause"
        then "${t1.description}, or ${phrase [ "noun" "conjunction" ] t2}"
        else "${phrase [ "noun" "conjunction" ] t1} or ${phrase [ "noun" "conjunction" "composite" ] t2}";
      descriptionClass = "conjunction";
      check = x: t1.check x || t2.check x;
      merge = loc: defs:
        let values = getValues defs; in
        if all t1.check values then t1.merge loc defs
        else if all t2.check values then t2.merge loc defs
        else mergeOneOption loc defs;
      functor = defaultFunctor "either" // { wrapped = [ t1 t2 ]; };
      typeMerge = f':
        if f'.name != "either" then null
        else
          let
            m1 = t1.typeMerge (elemAt f'.wrapped 0).functor;
            m2 = t2.typeMerge (elemAt f'.wrapped 1).functor;
          in
          if m1 == null || m2 == null then null else either m1 m2;
      nestedTypes = { left = t1; right = t2; };
    };

    oneOf = ts:
      if ts == [ ] then throw "types.oneOf needs at least one type"
      else builtins.foldl' either (head ts) (builtins.tail ts);

    # A submodule cannot be coerced from: its definitions are modules, not values to convert.
    coercedTo = coercedType: coerceFunc: finalType:
      if coercedType.getSubModules != null then
        throw "coercedTo: coercedType must not have submodules (it's a ${coercedType.description})"
      else mkOptionType {
      name = "coercedTo";
      description = "${phrase [ "noun" ] finalType} or ${phrase [ "noun" ] coercedType} convertible to it";
      check = x: (coercedType.check x && finalType.check (coerceFunc x)) || finalType.check x;
      merge = loc: defs:
        finalType.merge loc (map (def: def // {
          value = if coercedType.check def.value then coerceFunc def.value else def.value;
        }) defs);
      emptyValue = finalType.emptyValue;
      getSubOptions = finalType.getSubOptions;
      getSubModules = finalType.getSubModules;
      substSubModules = m: coercedTo coercedType coerceFunc (finalType.substSubModules m);
      typeMerge = _: null;
      functor = defaultFunctor "coercedTo" // { wrapped = finalType; };
      nestedTypes = { inherit coercedType finalType; };
    };

    addCheck = elemType: check: elemType // {
      check = x: elemType.check x && check x;
    };

    submodule = modules: submoduleWith {
      shorthandOnlyDefinesConfig = true;
      modules = lib.toList modules;
    };

    submoduleWith =
      { modules
      , specialArgs ? { }
      , shorthandOnlyDefinesConfig ? false
      , description ? null
      , class ? null
      } @ attrs:
      let
        # A definition is a module of its own: an attrset is its config (for `submodule`) or
        # a full module (for `submoduleWith` by default); functions and paths are modules.
        defModules = defs: map (def:
          if shorthandOnlyDefinesConfig && isAttrs def.value && !(def.value ? __functor)
          then { _file = def.file; config = def.value; }
          else { _file = def.file; imports = [ def.value ]; }) defs;
        nameOf = loc: if loc == [ ] then "<name>" else lib.last loc;
        evalWith = loc: extra: lib.evalModules {
          modules = modules ++ extra;
          specialArgs = specialArgs // { name = nameOf loc; };
          prefix = loc;
          inherit class;
        };
      in
      mkOptionType {
        name = "submodule";
        # A freeform submodule is described by its freeform type ("attribute set of string"),
        # as in NixOS. Only docs and error messages read this, so the extra evaluation of the
        # submodule's own modules happens only then.
        description =
          if description != null then description
          else
            # A submodule whose config fails without definitions must still be describable
            # (error messages use the description).
            let
              r = builtins.tryEval (
                let freeform = (evalWith [ ] [ ])._module.freeformType; in
                if freeform != null then freeform.description else "submodule");
            in
            if r.success then r.value else "submodule";
        check = x: isAttrs x || isFunction x || path.check x;
        merge = loc: defs: (evalWith loc (defModules defs)).config;
        emptyValue = { value = { }; };
        getSubOptions = prefix: (evalWith prefix [ ]).options;
        getSubModules = modules;
        substSubModules = m: submoduleWith (attrs // { modules = m; });
        nestedTypes = { };
        functor = defaultFunctor "submodule" // {
          type = payload: submoduleWith payload;
          payload = { inherit modules specialArgs shorthandOnlyDefinesConfig description class; };
          binOp = a: b:
            if a.shorthandOnlyDefinesConfig != b.shorthandOnlyDefinesConfig then null
            else if a.class != null && b.class != null && a.class != b.class then
              throw "A submoduleWith option is declared multiple times with conflicting class values \"${toString b.class}\" and \"${toString a.class}\".\nA submodule has one class."
            else {
              modules = a.modules ++ b.modules;
              specialArgs = a.specialArgs // b.specialArgs;
              inherit (a) shorthandOnlyDefinesConfig;
              class = if a.class == null then b.class else a.class;
              description = if a.description != null then a.description else b.description;
            };
        };
      };

    deferredModule = deferredModuleWith { };
    deferredModuleWith = { staticModules ? [ ] }: mkOptionType {
      name = "deferredModule";
      description = "module";
      descriptionClass = "noun";
      check = x: isAttrs x || isFunction x || path.check x;
      merge = loc: defs: {
        imports = staticModules ++ map (def: {
          _file = "${toString def.file}, via option ${showOption loc}";
          imports = [ def.value ];
        }) defs;
      };
      getSubOptions = prefix: (lib.evalModules { modules = staticModules; inherit prefix; }).options;
      getSubModules = staticModules;
      substSubModules = m: deferredModuleWith { staticModules = m; };
      functor = defaultFunctor "deferredModule" // {
        type = deferredModuleWith;
        payload = { inherit staticModules; };
        binOp = a: b: { staticModules = a.staticModules ++ b.staticModules; };
      };
    };

    optionType = mkOptionType {
      name = "optionType";
      description = "optionType";
      check = x: isAttrs x && (x._type or null) == "option-type";
      # The modules of submodule types get the defining file as their default `_file`, so
      # that messages about their options name it. A single definition is its value, untouched
      # (a type changed by hand, e.g. with another `merge`, must survive).
      merge = loc: defs:
        if length defs == 1 then (head defs).value
        else
        let
          located = map (def:
            if def.value.getSubModules or null == null then def.value
            else def.value.substSubModules (map (lib.setDefaultModuleLocation def.file) def.value.getSubModules)) defs;
        in
        builtins.foldl' (acc: t:
          let m = acc.typeMerge t.functor; in
          if m == null then throw "The option `${showOption loc}' has definitions with types that do not merge:${lib.showDefs defs}"
          else m) (head located) (builtins.tail located);
    };
  };
in
types
