{ l = [ "extra" ]; }
