{ l = [ "web" ]; }
