{ s = "from a"; }
