"""Triton kernels and their launchers, one module per op.

Each module exports ``COMPILE_TARGETS``: its kernels in a representative configuration, which
``python -m atbsn_kernels.compile_check`` compiles ahead of time for sm_80 and sm_90.
"""

KERNEL_MODULES = ("blind_spot_conv2d", "shifted_max_pool2d", "upsample_cat", "unrotate_cat")
