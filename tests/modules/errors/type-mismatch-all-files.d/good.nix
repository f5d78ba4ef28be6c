{ l = [ "fine" ]; }
