// Schema of the unrotate_cat ops (docs/kernel-contract.md) and their CPU kernels.
// CUDA kernels register in unrotate_cat_cuda.cpp; fake kernels and autograd in Python.
#include <torch/library.h>

#include "cpu/unrotate_cat_cpu.h"

TORCH_LIBRARY_FRAGMENT(atbsn, m) {
  m.def("unrotate_cat(Tensor features, int shift) -> Tensor");
  m.def("unrotate_cat_backward(Tensor grad_out, int shift) -> Tensor");
}

TORCH_LIBRARY_IMPL(atbsn, CPU, m) {
  m.impl("unrotate_cat", &atbsn::unrotate_cat_cpu);
  m.impl("unrotate_cat_backward", &atbsn::unrotate_cat_backward_cpu);
}
