# passwdEntry refuses colons and newlines (fields of /etc/passwd).
let t = (import ../../../lib).types.passwdEntry (import ../../../lib).types.str; in
{ checks = map t.check [ "alice" "a:b" "a\nb" 1 ]; inherit (t) description; }
