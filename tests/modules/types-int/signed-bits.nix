# s8, s16 and s32 take -2^(n-1) up to 2^(n-1) - 1.
let inherit ((import ../../../lib).types) ints; in
{
  s8 = map ints.s8.check [ (-129) (-128) 127 128 ];
  s16 = map ints.s16.check [ (-32769) (-32768) 32767 32768 ];
  s32 = map ints.s32.check [ (-2147483649) (-2147483648) 2147483647 2147483648 ];
  description = ints.s16.description;
}
