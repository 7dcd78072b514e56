"""Rewrites csrc/cuda/*.cu(h) into host C++ that emu.h can run: <<<>>> launches become
emu::launch calls, dynamic shared memory and the lanemask asm become emulator calls, and 16-byte
vector loads assert their alignment. Usage: transform.py SRC_DIR DST_DIR."""
import pathlib
import re
import sys

src, dst = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
dst.mkdir(parents=True, exist_ok=True)
for f in src.iterdir():
    if f.name == "bindings_cuda.cu":  # host/ATen side: not emulated
        continue
    s = f.read_text()
    s = re.sub(r"(\b[\w:]+(?:<[^;<>]*>)?)\s*<<<(.*?)>>>", r"emu::launch(\1, \2)", s)
    s = re.sub(r"extern __shared__ (\w+) (\w+)\[\];", r"\1* \2 = reinterpret_cast<\1*>(emu::dyn_smem);", s)
    s = s.replace('asm("mov.u32 %0, %%lanemask_lt;" : "=r"(m));', "m = emu::lanemask_lt();")
    s = re.sub(r"\*reinterpret_cast<const (uint4|float4|uint2|uint32_t)\*>\((\w+(?: \+ \w+)?)\)",
               r"*emu::aligned_ptr(reinterpret_cast<const \1*>(\2))", s)
    (dst / f.name).write_text(s)
