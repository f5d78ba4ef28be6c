# Option paths quote names that are not plain identifiers.
let lib = import ../../../lib; in
lib.showOption [ "services" "nginx" "virtualHosts" "example.org" "<name>" "*" "with space" "if" ]
