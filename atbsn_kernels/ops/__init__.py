"""The public ops, one module each (``blind_spot_conv2d``, ``shifted_conv2d``,
``shifted_max_pool2d``, ``upsample_cat``, ``unrotate_cat``): checks, fake kernels, autograd,
registration and the table ``IMPLEMENTATIONS = {backend name: implementation}`` that leads from
the API to every kernel.
The functions themselves are exported by ``atbsn_kernels``; this package exports only modules."""
