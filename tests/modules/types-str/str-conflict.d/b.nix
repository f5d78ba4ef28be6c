{ s = "from b"; }
