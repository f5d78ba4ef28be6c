# A freeform submodule is described by its freeform type.
let lib = import ../../../lib; in
(lib.types.submodule { freeformType = lib.types.attrsOf lib.types.str; }).description
