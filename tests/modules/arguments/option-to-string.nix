# An option record interpolates to the option's name, for messages.
let lib = import ../../../lib; in
(lib.evalModules {
  modules = [
    { options.services.web.port = lib.mkOption { default = 80; }; options.msg = lib.mkOption { type = lib.types.str; }; }
    ({ options, ... }: { msg = "set ${options.services.web.port} instead"; })
  ];
}).config.msg
