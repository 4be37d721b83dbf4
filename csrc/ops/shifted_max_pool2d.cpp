// Schema of the shifted max-pool ops (docs/kernel-contract.md) and their CPU kernels.
// CUDA kernels register in shifted_max_pool2d_cuda.cpp; fake kernels and autograd in Python.
#include <torch/library.h>

#include "cpu/shifted_max_pool2d_cpu.h"

TORCH_LIBRARY_FRAGMENT(atbsn, m) {
  m.def("shifted_max_pool2d(Tensor x) -> Tensor");
  m.def("shifted_max_pool2d_backward(Tensor grad_out, Tensor x) -> Tensor");
}

TORCH_LIBRARY_IMPL(atbsn, CPU, m) {
  m.impl("shifted_max_pool2d", &atbsn::shifted_max_pool2d_cpu);
  m.impl("shifted_max_pool2d_backward", &atbsn::shifted_max_pool2d_backward_cpu);
}
