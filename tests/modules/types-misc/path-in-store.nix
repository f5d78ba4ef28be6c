# pathInStore accepts paths below the store directory.
let t = (import ../../../lib).types.pathInStore; in
map t.check [ "${builtins.storeDir}/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-x/bin/sh" builtins.storeDir "/usr/bin" "${builtins.storeDir}/.links" ]
