{ x = "not an int"; }
