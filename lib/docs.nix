# Option documentation: the option tree as a flat, sorted list of entries.
{ lib }:
let
  inherit (builtins) attrNames concatMap isAttrs filter tryEval;
  inherit (lib) isOption showOption showValue;

  renderLiteral = v:
    if isAttrs v && ((v._type or null) == "literalExpression" || (v._type or null) == "literalMD")
    then v
    else { _type = "literalExpression"; text = showValue v; };

  entry = opt:
    let
      name = showOption opt.loc;
      default =
        if opt ? defaultText then { default = renderLiteral opt.defaultText; }
        else if opt ? default then
          (let r = tryEval (builtins.deepSeq (showValue opt.default) (showValue opt.default)); in
           if r.success then { default = { _type = "literalExpression"; text = r.value; }; }
           else throw "The default of option `${name}' cannot be shown in the documentation (it depends on other options or fails to evaluate); give the option a `defaultText'.")
        else { };
    in
    {
      inherit name;
      loc = opt.loc;
      type = opt.type.description or "unspecified value";
      description = opt.description or null;
      declarations = map toString (opt.declarations or [ ]);
      readOnly = opt.readOnly or false;
      internal = opt.internal or false;
      visible = (opt.visible or true) != false;
    }
    // default
    // lib.optionalAttrs (opt ? example) { example = renderLiteral opt.example; }
    // lib.optionalAttrs (opt ? relatedPackages) { relatedPackages = opt.relatedPackages; };

  # Options, and the options of their submodules (under `<name>` / `*`), depth first.
  collect = options:
    concatMap (n:
      let v = options.${n}; in
      if isOption v then
        [ (entry v) ]
        ++ (if (v.visible or true) == true && !(v.internal or false)
            then collect (v.type.getSubOptions v.loc) else [ ])
      else if isAttrs v then collect v
      else [ ]) (attrNames options);
in
{
  # Entries for every option, sorted by name. Invisible and internal options are included
  # (with their flags) so that callers choose what to render.
  optionsToDocList = options: lib.sortOn (e: e.name) (collect options);

  # The names of visible, non-internal options without a description, from the entries of
  # optionsToDocList or from an option tree (`(evalModules { ... }).options`).
  undocumentedOptions = docListOrOptions:
    let docList = if builtins.isList docListOrOptions then docListOrOptions else lib.optionsToDocList docListOrOptions; in
    map (e: e.name) (filter (e: e.visible && !e.internal && (e.description == null || e.description == "")) docList);
}
