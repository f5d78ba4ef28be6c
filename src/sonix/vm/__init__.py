"""Booting sonix systems in QEMU: host checks, firmware, disks, the QEMU command line.

- `qemu.py`: the accelerator probe (KVM only when OVMF and a kernel really run under it), the
  watch that falls back to TCG when KVM fails a guest anyway, OVMF, the per-VM disk, and
  `qemu_argv()` — the one function that turns a `VmSpec` into an argv.
- `network.py`: a user-space Ethernet hub over unix sockets for VM-to-VM networks.
"""
