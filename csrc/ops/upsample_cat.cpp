// Schema of the upsample_cat ops (docs/kernel-contract.md) and their CPU kernels.
// CUDA kernels register in upsample_cat_cuda.cpp; fake kernels and autograd in Python.
#include <torch/library.h>

#include "cpu/upsample_cat_cpu.h"

TORCH_LIBRARY_FRAGMENT(atbsn, m) {
  m.def("upsample_cat(Tensor x, Tensor skip) -> Tensor");
  m.def("upsample_cat_backward(Tensor grad_out, int x_channels) -> (Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(atbsn, CPU, m) {
  m.impl("upsample_cat", &atbsn::upsample_cat_cpu);
  m.impl("upsample_cat_backward", &atbsn::upsample_cat_backward_cpu);
}
