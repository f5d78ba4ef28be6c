"""Programs that run on the target machine (standard library only: the image's python3 is
trixie's as is). The image installs this directory as /usr/lib/sonix/agents; host-side tools
import the same modules (for example `uki`) so both sides read files the same way."""
