# u8, u16 and u32 take 0 up to 2^n - 1.
let inherit ((import ../../../lib).types) ints; in
{
  u8 = map ints.u8.check [ (-1) 0 255 256 ];
  u16 = map ints.u16.check [ (-1) 0 65535 65536 ];
  u32 = map ints.u32.check [ (-1) 0 4294967295 4294967296 ];
  description = ints.u8.description;
}
