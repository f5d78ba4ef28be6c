# The module system: collecting modules, merging declarations and definitions, properties.
#
# Vocabulary (as in NixOS):
#   declaration   an option made with mkOption, under a module's `options`
#   definition    a value for an option, under a module's `config` (or its shorthand)
#   property      mkIf / mkMerge / mkOverride / mkOrder wrapped around a definition
#   loc           the option's path, a list of names: [ "services" "nginx" "enable" ]
{ lib }:
let
  inherit (builtins) isAttrs isFunction isList isPath isString isBool length head tail elemAt
    attrNames mapAttrs zipAttrsWith filter concatMap concatLists all any foldl' removeAttrs
    genericClosure functionArgs listToAttrs sort unsafeGetAttrPos;
  inherit (lib) isOption showOption showDefs showLocation showValueShort mkOption types
    prioritySuggestion concatStringsSep;

  defaultOverridePriority = 100;
  defaultOrderPriority = 1000;

  # ---------------------------------------------------------------------------------------
  # Properties

  mkIf = condition: content: { _type = "if"; inherit condition content; };
  mkMerge = contents: { _type = "merge"; inherit contents; };
  mkOverride = priority: content: { _type = "override"; inherit priority content; };
  mkOrder = priority: content: { _type = "order"; inherit priority content; };

  propertyType = v: if isAttrs v then v._type or null else null;

  # At a set of options, push properties into the attributes so that the names are known
  # without evaluating any condition: mkIf c { a = x; } becomes [ { a = mkIf c x; } ].
  pushDownProperties = v:
    let t = propertyType v; in
    if t == "merge" then concatMap pushDownProperties v.contents
    else if t == "if" then map (mapAttrs (_: mkIf v.condition)) (pushDownProperties v.content)
    else if t == "override" then map (mapAttrs (_: mkOverride v.priority)) (pushDownProperties v.content)
    else if t == "order" then map (mapAttrs (_: mkOrder v.priority)) (pushDownProperties v.content)
    else [ v ];

  # At an option, turn one definition into a list of { value; prio; order; }: mkMerge
  # spreads, mkIf false drops, mkOverride/mkOrder set priorities (the outermost one wins).
  discharge = loc: def: v: prio: order:
    let t = propertyType v; in
    if t == null then [ { inherit (def) file; pos = def.pos or null; value = v; inherit prio order; } ]
    else if t == "merge" then concatMap (c: discharge loc def c prio order) v.contents
    else if t == "if" then
      (if v.condition == true then discharge loc def v.content prio order
       else if v.condition == false then [ ]
       else throw "The condition of mkIf in the definition of `${showOption loc}' in `${showLocation def}' is not a Boolean but ${showValueShort v.condition}.")
    else if t == "override" then
      discharge loc def v.content (if prio == null then v.priority else prio) order
    else if t == "order" then
      discharge loc def v.content prio (if order == null then v.priority else order)
    else [ { inherit (def) file; pos = def.pos or null; value = v; inherit prio order; } ];

  # ---------------------------------------------------------------------------------------
  # Merging the definitions of one option

  mergeDefinitions = loc: type: defs:
    if defs != [ ] && all (d: !(isAttrs d.value && d.value ? _type)) defs
    then mergePlainDefinitions loc type defs
    else mergeDefinitions' loc type defs;

  # No properties anywhere: every definition counts, in order, at the default priority.
  mergePlainDefinitions = loc: type: defs: {
    defsFinal = defs;
    isDefined = true;
    highestPrio = defaultOverridePriority;
    mergedValue = checkAndMerge loc type defs;
    optionalValue = { value = checkAndMerge loc type defs; };
  };

  checkAndMerge = loc: type: defs:
    let bad = filter (d: !(type.check d.value)) defs; in
    if bad != [ ] then
      throw ''
        A definition for option `${showOption loc}' is not of type `${type.description}'. Definition values:${showDefs bad}${
          lib.optionalString (length bad != length defs) "\nAll definitions:${showDefs defs}"}''
    else type.merge loc defs;

  mergeDefinitions' = loc: type: defs:
    let
      discharged = concatMap (def: discharge loc def def.value null null) defs;
      prioOf = d: if d.prio == null then defaultOverridePriority else d.prio;
      highestPrio = foldl' (p: d: lib.min p (prioOf d)) 9999 discharged;
      kept = filter (d: prioOf d == highestPrio) discharged;
      orderOf = d: if d.order == null then defaultOrderPriority else d.order;
      sorted =
        if all (d: d.order == null) kept then kept
        else sort (a: b: orderOf a < orderOf b) kept;
      defsFinal = map (d: { inherit (d) file pos value; }) sorted;
      isDefined = defsFinal != [ ];
      mergedValue =
        if !isDefined then
          throw "The option `${showOption loc}' is used but not defined.\nSet it, or give the option a default."
        else checkAndMerge loc type defsFinal;
    in
    {
      inherit defsFinal isDefined mergedValue highestPrio;
      optionalValue = if isDefined then { value = mergedValue; } else { };
    };

  # ---------------------------------------------------------------------------------------
  # Declarations

  # Several modules may declare one option: their fields are combined, each field from one
  # declaration only; types combine when they can (submodules, enums, same type).
  mergeOptionDecls = loc: decls:
    let
      options = filter (d: isOption d.value) decls;
      subOptionSets = filter (d: !(isOption d.value)) decls;
      combine = res: d:
        let
          opt = removeAttrs (locateSubmodules d.file d.value) [ "_type" ];
          bothHave = k: res ? ${k} && opt ? ${k};
          # As in NixOS: other fields (readOnly, internal, visible, defaultText, ...) may be
          # repeated, the last declaration's value counting.
          clash = filter bothHave [ "default" "example" "description" "apply" ];
          mergedType = res.type.typeMerge opt.type.functor;
        in
        if clash != [ ] then
          throw "The option `${showOption loc}' in `${toString d.file}' is already declared in ${lib.showFiles res.declarations}.\n`${head clash}' may be set by one declaration only."
        else if bothHave "type" && mergedType == null then
          throw "The option `${showOption loc}' in `${toString d.file}' is already declared in ${lib.showFiles res.declarations}.\nIt is declared there with type `${res.type.description}', here with type `${opt.type.description}'; these types cannot be combined."
        else
          res // opt // {
            declarations = res.declarations ++ [ d.file ];
          } // lib.optionalAttrs (bothHave "type") { type = mergedType; };
      merged = foldl' combine { declarations = [ ]; } options;
      baseType = merged.type or types.unspecified;
      extraModules = map (d: { _file = d.file; options = d.value; }) subOptionSets;
      type =
        if extraModules == [ ] then baseType
        else if baseType.getSubModules == null then
          throw ("The option `${showOption loc}' in module `${toString (head options).file}' would be a parent of the following options, but its type `${(head options).value.type.description or "<no description>"}' does not support nested options.\n"
            + concatStringsSep "\n" (map (d: "- option(s) with prefix `${showOption (loc ++ [ (head (attrNames d.value)) ])}' in module `${toString d.file}'") (filter (d: d.value != { }) subOptionSets))
            + "\nOnly submodule-typed options take sub-options.")
        else baseType.substSubModules (baseType.getSubModules ++ extraModules);
    in
    merged // {
      inherit type;
      declarations = merged.declarations ++ map (d: d.file) subOptionSets;
    };

  # The modules of a submodule-typed option get the declaring file as their default `_file`,
  # so that the documentation of its sub-options names the file that declared the option (as
  # in NixOS). For an option declared once this is only done for its record (`type` there),
  # which docs read; the value is merged with the type as declared, so that the thousands of
  # entries of an attrsOf submodule pay nothing for it. Definitions in those modules are
  # located by their positions anyway.
  # (NixOS wraps each module in `{ _file; imports = [ m ]; }`; here the file is put into the
  # module itself, which costs far less than the extra module for every entry of an
  # attrsOf submodule.)
  locateSubmodules = file: opt:
    if opt ? type && opt.type.getSubModules != null && opt.type.getSubModules != [ ] then
      opt // { type = opt.type.substSubModules (map (withDefaultFile file) opt.type.getSubModules); }
    else opt;

  withDefaultFile = file: m:
    if isAttrs m && !(m ? __functor) then (if m ? _file then m else m // { _file = file; })
    else if isFunction m then
      lib.setFunctionArgs (args: withDefaultFile file (m args)) (functionArgs m)
    else m;  # paths name themselves; functors are left alone

  setDefaultModuleLocation = file: m: { _file = file; imports = [ m ]; };

  # The value and the documentation record of one declared option. This runs once per option
  # per evaluation (for every entry of an attrsOf submodule, too), so it allocates little: the
  # full merge and the documentation record are only built when something asks for them.
  evalOption = loc: opt: declarations: positions: defs:
    let
      type = opt.type or types.unspecified;
      # Fast path: a plain value of a simple type, alone or over the default, is the value.
      single =
        if defs == [ ] then opt.default or null
        else if length defs == 1 then (head defs).value
        else null;
      simple =
        type.singleDefIsValue && length defs <= 1 && (defs != [ ] || opt ? default)
        && !(isAttrs single && single ? _type) && type.check single;
      value0 =
        if simple then single
        else if (opt.readOnly or false) && length defs > 1 then
          throw ''
            The option `${showOption loc}' is read-only, but it is set ${toString (length defs)} times:${showDefs defs}
            Remove all but one of these definitions.''
        else (mergeWithDefault loc opt type declarations defs).mergedValue;
      value = if opt ? apply then opt.apply value0 else value0;
    in
    {
      isOption = true;
      inherit value;
      option = optionRecord loc opt type declarations positions defs value;
    };

  mergeWithDefault = loc: opt: type: declarations: defs:
    if defs != [ ] && all (d: !(isAttrs d.value && d.value ? _type)) defs
    then mergePlainDefinitions loc type defs  # plain definitions outrank the default
    else mergeDefinitions' loc type
      ((if opt ? default then [ { file = head declarations; pos = null; value = mkOverride 1500 opt.default; } ] else [ ])
       ++ defs);

  optionRecord = loc: opt: type: declarations: positions: defs: value:
    let res = mergeWithDefault loc opt type declarations defs; in
    opt // {
      type = if length declarations == 1 then (locateSubmodules (head declarations) { inherit type; }).type else type;
      # Merged declarations lost their `_type` (mergeOptionDecls combines fields only); the
      # record must still be recognised by isOption, by docs and by mkAliasIfDef.
      _type = "option";
      # "${options.services.web.port}" gives the option's name, for messages (as in NixOS).
      __toString = _: showOption loc;
      inherit value loc declarations;
      declarationPositions = positions;
      inherit (res) isDefined highestPrio;
      definitions = map (d: d.value) res.defsFinal;
      definitionsWithLocations = res.defsFinal;
      files = lib.unique (map (d: d.file) res.defsFinal);
    };

  # ---------------------------------------------------------------------------------------
  # One level of the option tree

  withFile = file: set: { inherit file; value = set; };

  # decls, defs: lists of { file; value = attrset; }
  mergeLevel = loc: decls: defs:
    let
      declsByName = zipAttrsWith (_: ds: ds)
        (map (d: mapAttrs (_: v: { inherit (d) file; value = v; }) d.value) decls);
      defsByName = zipAttrsWith (_: ds: ds)
        (map (d: mapAttrs (n: v: { inherit (d) file; value = v; pos = unsafeGetAttrPos n (d.src or d.value); }) d.value) defs);
      children = mapAttrs (n: ds:
        if length ds == 1 && isOption (head ds).value
        then evalOption (loc ++ [ n ]) (head ds).value [ (head ds).file ] (declarationPositions n decls) (defsByName.${n} or [ ])
        else if any (d: isOption d.value) ds
        then
          (let merged = mergeOptionDecls (loc ++ [ n ]) ds; in
           evalOption (loc ++ [ n ]) merged merged.declarations (declarationPositions n decls) (defsByName.${n} or [ ]))
        else mergeLevel (loc ++ [ n ]) (map (d: checkOptionSet (loc ++ [ n ]) d) ds)
          (pushDownDefs (loc ++ [ n ]) (defsByName.${n} or [ ])))
        declsByName;
      unknownNames = attrNames (removeAttrs defsByName (attrNames declsByName));
    in
    {
      isOption = false;
      inherit defsByName;
      config = mapAttrs (_: c: c.value or c.config) children;
      options = mapAttrs (_: c: c.option or c.options) children;
      # Definitions that match no declaration, with their path below this level.
      unmatched =
        concatMap (n: map (def: def // { path = [ n ]; name = n; at = loc; siblings = attrNames declsByName; })
          defsByName.${n}) unknownNames
        ++ concatMap (n:
          let c = children.${n}; in
          if !(defsByName ? ${n}) || c.isOption then [ ]
          else map (u: u // { path = [ n ] ++ u.path; }) c.unmatched) (attrNames children);
    };

  # Where the declarations of option `n` of a level are written: { file; line; column; } as
  # Nix knows it, or the declaring file with null line and column for a generated attribute
  # set. In the order of the option record's `declarations` (options, then sets of sub-options).
  declarationPositions = n: decls:
    let
      here = filter (d: d.value ? ${n}) decls;
      position = d:
        let p = unsafeGetAttrPos n d.value; in
        if p == null then { inherit (d) file; line = null; column = null; } else p;
    in
    map position (filter (d: isOption d.value.${n}) here ++ filter (d: !(isOption d.value.${n})) here);

  checkOptionSet = loc: d:
    if isAttrs d.value && !(d.value ? _type) then d
    else if isAttrs d.value then
      # Most often a type where mkOption was meant: `options.port = types.port;`.
      throw "In module ${toString d.file}: expected an option declaration at option path `${showOption loc}` but got an attribute set with type ${toString d.value._type}\nDeclare options with mkOption (`lib.mkOption { type = ...; }`)."
    else throw "The declaration of `${showOption loc}' in `${toString d.file}' is neither an option (made with mkOption) nor a set of options, but ${showValueShort d.value}.";

  # The definitions of a set of options, properties pushed into the attributes (see
  # pushDownProperties), as { file; value; } plus `src` when `value` is a rewritten copy:
  # `src` is the set as the module wrote it, where Nix knows each attribute's file and line.
  pushDownDefs = loc: defs: concatMap (def: pushDownDef loc def null def.value) defs;

  # `wrap` re-applies the properties met on the way down (null: none), outermost first.
  pushDownDef = loc: def: wrap: v:
    let t = propertyType v; in
    if t == null && isAttrs v then
      (if wrap == null then [ { inherit (def) file; value = v; } ]
       else [ { inherit (def) file; value = mapAttrs (_: wrap) v; src = v; } ])
    else if t == "merge" then concatMap (pushDownDef loc def wrap) v.contents
    else if t == "if" then pushDownDef loc def (wrapWith wrap (mkIf v.condition)) v.content
    else if t == "override" then pushDownDef loc def (wrapWith wrap (mkOverride v.priority)) v.content
    else if t == "order" then pushDownDef loc def (wrapWith wrap (mkOrder v.priority)) v.content
    else if loc == [ ] then throw "A module's configuration in `${showLocation def}' must be an attribute set, not ${showValueShort v}."
    else throw ''
      In module `${toString def.file}', you're trying to define a value of type `${builtins.typeOf v}'
      rather than an attribute set for the option `${showOption loc}'!
      `${showOption loc}' is a set of options, so its definition in `${showLocation def}' must be an attribute set, not ${showValueShort v}.'';

  wrapWith = outer: inner: if outer == null then inner else x: outer (inner x);

  # ---------------------------------------------------------------------------------------
  # Collecting modules

  moduleFunctionArgs = f:
    if isFunction f then functionArgs f
    else f.__functionArgs or (functionArgs (f.__functor f));

  isModuleFunction = m: isFunction m || (isAttrs m && m ? __functor);

  # All of `args` (so that `args@{ ... }:` sees config, lib, options and specialArgs, as in
  # NixOS), plus the named arguments that come from `_module.args`. Most module functions ask
  # only for what `args` has (config, lib, name, ...): they get `args` itself, uncopied. (This
  # runs for every module function of every submodule entry, hence no `let` beyond the one.)
  applyModuleArgs = file: key: f: args:
    let fromModuleArgs = removeAttrs (moduleFunctionArgs f) args._names; in
    if fromModuleArgs == { } then f args
    else f (args // mapAttrs (name: _:
      # NixOS's trace line, so that an error (or an infinite recursion) names the argument.
      builtins.addErrorContext "while evaluating the module argument `${name}' in \"${key}\":"
        (args.config._module.args.${name} or (missingModuleArg file key name))) fromModuleArgs);

  missingModuleArg = file: key: name: throw ''
    The module `${key}'${if file == key || file == "<unknown-file>" then "" else " (in `${file}')"} takes the argument `${name}', but nothing provides it.
    Provide it with `_module.args.${name}' in a module, or with `specialArgs.${name}' when calling evalModules.'';

  # The fixed attributes of evalModules' `moduleArgs`; keep the two in step. With specialArgs'
  # names they are `args._names`, what applyModuleArgs need not look up in `_module.args`.
  baseArgNames = [ "lib" "config" "options" "specialArgs" "extendModules" "moduleType" "_prefix" "_class" "_names" ];

  # Module top-level attributes besides configuration.
  specialModuleAttrs = [ "_file" "key" "disabledModules" "imports" "options" "config" "meta" "freeformType" "_class" ];

  # `freeformType` and `meta` at a module's top level are definitions (of
  # `_module.freeformType` and of the `meta` option), in the full form and in the shorthand
  # alike, as in NixOS. A top-level function rather than a `let` in normaliseModule: this runs
  # for every module of every submodule entry, and closures cost memory.
  withExtraDefs = m: config:
    if m ? freeformType || m ? meta then
      mkMerge ([ config ]
        ++ lib.optional (m ? freeformType) { _module.freeformType = m.freeformType; }
        ++ lib.optional (m ? meta) { inherit (m) meta; })
    else config;

  normaliseModule = file: key: m:
    if m ? config || m ? options then
      (let extra = removeAttrs m specialModuleAttrs; in
      if extra != { } then
        throw ''
          The module `${key}' has `config' or `options' at its top level, so the other top-level attributes (${concatStringsSep ", " (attrNames extra)}) are not allowed.
          Move them into `config', or drop `config'/`options' to use the shorthand form.''
      else {
        inherit file key;
        disabledModules = m.disabledModules or [ ];
        imports = m.imports or [ ];
        options = m.options or { };
        config = withExtraDefs m (m.config or { });
      })
    else {
      inherit file key;
      disabledModules = m.disabledModules or [ ];
      imports = m.imports or [ ];
      options = { };
      config = withExtraDefs m (removeAttrs m specialModuleAttrs);
    };

  # Load one module (path, function or attrset) into its normal form.
  loadModule = args: file: key: m:
    if isPath m || (isString m && lib.hasPrefix "/" m) then
      loadModule args (toString m) (toString m) (import m)
    else if isModuleFunction m then
      loadModule args file key (applyModuleArgs file key m args)
    else if isAttrs m && m ? _type && !(builtins.elem m._type [ "if" "merge" "override" "order" ]) then
      # A module may be a property (`mkIf cond { ... }`), but not some other tagged value: most
      # often the result of evalModules, imported instead of the modules that made it.
      throw "Could not load a value as a module, because it is of type \"${toString m._type}\", in file ${toString file}.${lib.optionalString (m._type == "configuration") " If you do intend to import this configuration, please only import the modules that make up the configuration.\nIt is the result of evalModules: import the modules that make it up, or use its `type' as an option type."}"
    else if isAttrs m then
      let
        file' = toString (m._file or file);
        key' = if m ? key then toString m.key else key;
      in
      # A module may say which kind of configuration it is for (`_class = "sonix"`); loading
      # it into an evaluation of another class is a mistake worth stopping (as in NixOS).
      if m ? _class && m._class != null && args._class != null && m._class != args._class then
        throw "The module ${if m ? _file then file' else key'} was imported into ${toString args._class} instead of ${toString m._class}.\nIt is for configurations of class `${toString m._class}' (its `_class')."
      else normaliseModule file' key' m
    else
      throw "module ${toString file} (${key}) does not look like a module.\nIt is a ${builtins.typeOf m}, but a module must be a path, a function or an attribute set.";

  keyOfDisabled = modulesPath: file: d:
    if isPath d then toString d
    else if isString d then (if lib.hasPrefix "/" d || modulesPath == null then d else "${toString modulesPath}/${d}")
    else if isAttrs d && d ? key then toString d.key
    else if builtins.isInt d || builtins.isFloat d || (isAttrs d && (d ? __toString || d ? outPath)) then toString d
    else if isAttrs d then throw "Module `${file}` contains a disabledModules item that is an attribute set, presumably a module, that does not have a `key` attribute. Nothing identifies the module to disable.\nEach item of disabledModules must be a path, a string relative to modulesPath or an attribute set with a `key'."
    else throw "Each disabledModules item must be a path, string, or a attribute set with a key attribute, or a value supported by toString. However, one of the disabledModules items in `${file}` is none of that, but is of type ${builtins.typeOf d}.";

  # Breadth-first closure of the imports; the first module with a given key wins.
  # `preloaded` modules are already in normal form (the internal module).
  collectModules = args: modulesPath: rootFile: preloaded: modules:
    let
      toItems = parent: ms: lib.imap1 (i: m:
        let loaded = loadModule args parent.file "${parent.key}:anon-${toString i}" m; in
        { key = loaded.key; module = loaded; }) ms;
      roots = map (m: { inherit (m) key; module = m; }) preloaded
        ++ toItems { file = rootFile; key = ""; } modules;
      importsOf = item:
        let inherit (item.module) imports; in
        if imports == [ ] then [ ]
        else if isList imports then toItems item.module imports
        else throw "The `imports' of module `${item.key}' must be a list of modules, not ${showValueShort imports}.";
      all' = genericClosure { startSet = roots; operator = importsOf; };
      disabledKeys = concatMap (item: map (keyOfDisabled modulesPath item.module.file) item.module.disabledModules) all';
      disabled = listToAttrs (map (k: { name = k; value = true; }) disabledKeys);
      # A disabled module's imports are disabled with it.
      kept = genericClosure {
        startSet = filter (item: !(disabled ? ${item.key})) roots;
        operator = item: filter (i: !(disabled ? ${i.key})) (importsOf item);
      };
    in
    map (item: item.module) (if disabledKeys == [ ] then all' else kept);

  # ---------------------------------------------------------------------------------------
  # evalModules

  # Declares _module.*; one shared value, so that its options are built once per Nix process.
  internalModule = {
    _file = "<sonix lib: evalModules>";
    key = "<sonix lib: internal module>";
    options._module = {
      args = mkOption {
        type = types.lazyAttrsOf types.raw;
        default = { };
        internal = true;
        description = "Arguments passed to every module function, besides `config`, `options`, `lib` and `specialArgs`.";
      };
      check = mkOption {
        type = types.bool;
        default = true;
        internal = true;
        description = "Whether a definition of an undeclared option is an error.";
      };
      freeformType = mkOption {
        type = types.nullOr types.optionType;
        default = null;
        internal = true;
        description = "The type of definitions that match no declared option; null makes them errors.";
      };
    };
  };

  loadedInternalModule = normaliseModule internalModule._file internalModule.key internalModule;

  # The first line is NixOS's, about the first undeclared option, so that it can be searched
  # for; our help (close names, the other undeclared options) follows.
  unknownOptionsError = unknownOptionHint: prefix: unmatched:
    let
      # sonix's extension: where an undeclared option is declared (the module to import).
      moduleHint = u: if unknownOptionHint == null then "" else unknownOptionHint (u.at ++ [ u.name ]);
      # The module to import says more than close names or the declared siblings.
      hint = u: let found = moduleHint u; in if found != "" then found else closeHint u;
      closeHint = u:
        let
          inherit (u) name;
          # Short names are close to everything, so they get fewer edits: none below three
          # characters, one below six, then a third of the length.
          len = lib.stringLength name;
          allowed = if len < 3 then 0 else if len < 6 then 1 else len / 3;
          close = lib.sortOn (c: c.d) (filter (c: c.d <= allowed)
            (map (s: { inherit s; d = lib.levenshtein name s; }) (filter (s: s != "_module") u.siblings)));
          suggest = map (c: "`${showOption (u.at ++ [ c.s ])}'") (lib.take 3 close);
          listing = filter (s: s != "_module") u.siblings;
        in
        if (builtins.tryEval (isOption u.value || (isAttrs u.value && lib.any isOption (lib.attrValues u.value)))).value or false then
          "It seems as if you're trying to declare an option by placing it into `config' rather than `options'!"
          + lib.optionalString (u.at != [ ]) " This can happen if you e.g. declared your options in `types.submodule' under `config' rather than `options'."
        else if suggest != [ ] then "Did you mean ${concatStringsSep " or " suggest}?"
        else if listing != [ ] && length listing <= 12 then "The options at `${if u.at == [ ] then "<top level>" else showOption u.at}' are: ${concatStringsSep ", " listing}."
        else "";
      indented = text: lib.optionalString (text != "") "\n  ${text}";
      describe = u:
        "- The option `${showOption (u.at ++ [ u.name ])}' does not exist. Definition in `${showLocation u}': ${lib.showValueSafe u.value}"
        + indented (hint u);
      first = head unmatched;
      firstName = showOption (first.at ++ [ first.name ]);
      firstValue =
        builtins.addErrorContext "while evaluating the error message for definitions for `${firstName}', which is an option that does not exist"
          (builtins.addErrorContext "while evaluating a definition from `${showLocation first}'"
            (lib.showValueSafe first.value));
      rest = lib.drop 1 unmatched;
      shown = lib.take 10 rest;
    in
    throw (''
      The option `${firstName}' does not exist. Definition values:
      - In `${showLocation first}': ${firstValue}''
      + lib.optionalString (hint first != "") "\n${hint first}"
      + lib.optionalString (rest != [ ]) ("\n${toString (length rest)} more definition${if length rest == 1 then "" else "s"} for undeclared options${if prefix == [ ] then "" else " in `${showOption prefix}'"}:\n"
        + concatStringsSep "\n" (map describe shown)
        + lib.optionalString (length rest > 10) "\n- ... and ${toString (length rest - 10)} more"));

  evalModules =
    evalArgs @ { modules
    , specialArgs ? { }
    , prefix ? [ ]
    , args ? { }
    , check ? true
    , class ? null
      # sonix's extension: a function from the path of an undeclared option to extra help
      # for the error ("" for none), e.g. the on-demand module that declares it.
    , unknownOptionHint ? null
    }:
    let
      legacy = lib.optional (args != { } || check != true) {
        _file = "<evalModules arguments>";
        key = "<evalModules arguments>";
        config._module = lib.optionalAttrs (args != { }) { inherit args; }
          // lib.optionalAttrs (check != true) { inherit check; };
      };

      moduleArgs = {
        inherit lib config options specialArgs extendModules;
        moduleType = type;
        _prefix = prefix;
        _class = class;
        # The names above and specialArgs' (see applyModuleArgs).
        _names = baseArgNames ++ attrNames specialArgs;
      } // specialArgs;

      collected = collectModules moduleArgs (specialArgs.modulesPath or null) "<unknown-file>"
        [ loadedInternalModule ] (modules ++ legacy);

      merged = mergeLevel prefix
        (map (m: withFile m.file m.options) collected)
        (pushDownDefs prefix (map (m: { inherit (m) file; value = m.config; pos = null; }) collected));

      options = merged.options;

      # Reading _module costs a merge; most evaluations (every submodule) never define it.
      moduleDefined = merged.defsByName ? _module;
      freeformType = if moduleDefined then merged.config._module.freeformType else null;
      moduleCheck = if moduleDefined then merged.config._module.check else true;

      freeformConfig =
        if merged.unmatched == [ ] then { }
        else freeformType.merge prefix (map (u: {
          inherit (u) file pos;
          value = lib.setAttrByPath u.path u.value;
        }) merged.unmatched);

      config =
        if freeformType == null then merged.config
        else lib.recursiveUpdate freeformConfig merged.config;

      checkResult =
        if merged.unmatched != [ ] && freeformType == null && moduleCheck
        then unknownOptionsError unknownOptionHint prefix merged.unmatched
        else true;
      checked = builtins.seq checkResult;

      type = types.submoduleWith { inherit modules specialArgs class; };

      extendModules = { modules ? [ ], specialArgs ? { }, prefix ? evalArgs.prefix or [ ] }:
        evalModules (evalArgs // {
          modules = evalArgs.modules ++ modules;
          specialArgs = (evalArgs.specialArgs or { }) // specialArgs;
          inherit prefix;
        });
    in
    {
      _type = "configuration";
      options = checked options;
      config = checked (removeAttrs config [ "_module" ]);
      _module = checked config._module;
      inherit extendModules class type;
    };

  # ---------------------------------------------------------------------------------------
  # Renaming and removing options

  showFilesOf = opt: concatStringsSep ", " (map (f: "`${toString f}'") opt.files);

  mkAliasIfDef = option: mkIf (isOption option && option.isDefined);
  mkAliasDefinitions = option:
    mkAliasIfDef option (mkMerge (map (mkOverride option.highestPrio) option.definitions));

  # An option at `from` that forwards its definitions to the option at `to`, and reads as it
  # (through `use`, e.g. a trace). `warn`: whether using the old name adds a warning (renames)
  # or not (aliases, which are also visible in the documentation). `withPriority`: whether the
  # definitions keep their priority (else they count as plain definitions). `condition`:
  # whether anything is forwarded at all.
  doRename = { from, to, visible, warn, use ? (x: x), withPriority ? true, condition ? true }: { config, options, ... }:
    let
      fromOpt = lib.attrByPath from { } options;
      toOpt = lib.attrByPath to null options;
    in
    {
      options = lib.setAttrByPath from (mkOption ({
        inherit visible;
        description = "Alias of `${showOption to}`.";
        apply = _: use (lib.getAttrFromPath to config);
      } // lib.optionalAttrs (toOpt != null && isOption toOpt) { type = toOpt.type; }));
      config = mkIf condition (mkMerge [
        # Only configurations that declare `warnings` get one (as in NixOS): evaluations
        # without the core modules (tests, submodules) may still use renames.
        (lib.optionalAttrs (warn && options ? warnings) {
          warnings = lib.optional (fromOpt.isDefined or false)
            "The option `${showOption from}' defined in ${showFilesOf fromOpt} has been renamed to `${showOption to}'.";
        })
        (lib.setAttrByPath to (if withPriority then mkAliasDefinitions fromOpt
          else mkAliasIfDef fromOpt (mkMerge fromOpt.definitions)))
      ]);
    };

  mkRenamedOptionModule = from: to: doRename { inherit from to; visible = false; warn = true; };
  mkAliasOptionModule = from: to: doRename { inherit from to; visible = true; warn = false; };

  # Options at the paths `from` whose values `mergeFn config` turns into a definition of the
  # option at `to` (of another type), with a warning for each one used.
  mkMergedOptionModule = from: to: mergeFn: { config, options, ... }:
    let used = filter (path: (lib.attrByPath path { } options).isDefined or false) from; in
    {
      options = foldl' lib.recursiveUpdate { } (map (path: lib.setAttrByPath path (mkOption {
        visible = false;
        description = "Replaced by `${showOption to}`.";
      })) from);
      config = mkMerge [
        (lib.optionalAttrs (options ? warnings) {
          warnings = map (path:
            "The option `${showOption path}' defined in ${showFilesOf (lib.attrByPath path { } options)} has been changed to `${showOption to}', which has a different type; see its documentation.")
            used;
        })
        (lib.setAttrByPath to (mkIf (used != [ ]) (mergeFn config)))
      ];
    };

  mkChangedOptionModule = from: to: changeFn: mkMergedOptionModule [ from ] to changeFn;

  mkRemovedOptionModule = optionName: replacementInstructions: { options, ... }:
    let opt = lib.attrByPath optionName { } options; in
    {
      options = lib.setAttrByPath optionName (mkOption {
        visible = false;
        type = types.raw;
        description = "Removed option: ${replacementInstructions}";
        apply = _: throw "The option `${showOption optionName}' has been removed. ${replacementInstructions}";
      });
      config.assertions = [ {
        assertion = !(opt.isDefined or false);
        message = ''
          The option `${showOption optionName}' defined in ${showFilesOf opt} no longer has any effect; remove it.
          ${replacementInstructions}'';
      } ];
    };

  # The core's assertions and warnings: every failed assertion listed in one error.
  checkAssertWarn = config: value:
    let
      failed = map (a: a.message) (filter (a: !a.assertion) (config.assertions or [ ]));
      warned = foldl' (v: w: builtins.trace "warning: ${w}" v) value (config.warnings or [ ]);
    in
    if failed != [ ] then
      throw "Failed assertions:\n${concatStringsSep "\n" (map (m: "- ${m}") failed)}"
    else warned;
in
{
  inherit mkIf mkMerge mkOverride mkOrder pushDownProperties mergeDefinitions evalModules
    mkAliasDefinitions mkAliasIfDef mkRenamedOptionModule mkAliasOptionModule doRename mkRemovedOptionModule mkMergedOptionModule mkChangedOptionModule checkAssertWarn
    defaultOverridePriority defaultOrderPriority;
  mkOptionDefault = mkOverride 1500;
  mkDefault = mkOverride 1000;
  mkImageMediaOverride = mkOverride 60;
  mkForce = mkOverride 50;
  mkVMOverride = mkOverride 10;
  mkBefore = mkOrder 500;
  mkAfter = mkOrder 1500;
  mkFixStrictness = x: x;
  inherit setDefaultModuleLocation;
  # Where the built-in modules live, for disabledModules given as relative paths.
  modulesPath = ../modules;
}
