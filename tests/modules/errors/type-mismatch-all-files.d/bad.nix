{
  l = "not a list";
}
