# Every module in the tree: the core (always loaded) and the on-demand ones. Used for the
# options reference, so that all options are documented in one place.
import ./module-list.nix ++ import ./on-demand.nix
