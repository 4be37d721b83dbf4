// Schema of the blind-spot conv ops (docs/kernel-contract.md) and their CPU kernels.
// CUDA kernels register in blind_spot_conv2d_cuda.cpp; fake kernels and autograd in Python.
#include <torch/library.h>

#include "cpu/blind_spot_conv2d_cpu.h"

TORCH_LIBRARY_FRAGMENT(atbsn, m) {
  m.def("blind_spot_conv2d(Tensor x, Tensor weight, Tensor? bias, int[] taps, int dilation, float? negative_slope) -> Tensor");
  m.def(
      "blind_spot_conv2d_backward(Tensor grad_out, Tensor x, Tensor weight, Tensor out, int[] taps, int dilation, "
      "float? negative_slope, bool[3] output_mask) -> (Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(atbsn, CPU, m) {
  m.impl("blind_spot_conv2d", &atbsn::blind_spot_conv2d_cpu);
  m.impl("blind_spot_conv2d_backward", &atbsn::blind_spot_conv2d_backward_cpu);
}
