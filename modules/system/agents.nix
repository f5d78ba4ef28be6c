# The on-machine agents (src/sonix/agents, standard-library Python run by the image's python3):
# modules list the agent modules they use, and each is installed once as
# /usr/lib/sonix/agents/<name>.py, whichever modules ask for it.
{ lib, config, ... }:
let
  inherit (lib) mkOption types;
  source = ../../src/sonix/agents;
  # common.py (log line, durable write, bounded download) is used by every agent.
  names = lib.unique ([ "common" ] ++ config.system.agents);
in
{
  options.system.agents = mkOption {
    type = types.listOf (types.enum [ "bootorder" "chunks" "common" "gpt" "ignition" "metadata" "provision" "records" "rootdir" "uki" "update" "versions" ]);
    default = [ ];
    internal = true;
    description = "Agent modules (src/sonix/agents/<name>.py) installed under /usr/lib/sonix/agents.";
  };

  config.system.usrFiles = lib.mkIf (config.system.agents != [ ]) (
    { "lib/sonix/agents/__init__.py".source = source + "/__init__.py"; }
    // lib.listToAttrs (map (name:
      lib.nameValuePair "lib/sonix/agents/${name}.py" { source = source + "/${name}.py"; }) names)
  );
}
