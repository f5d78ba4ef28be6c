# oneOf needs at least one type.
(import ../../../lib).types.oneOf [ ]
