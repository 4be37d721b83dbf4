// Host launchers of the CUDA blind-spot convolution (semantics: docs/kernel-contract.md).
// Plain C++ (no torch headers): raw pointers to contiguous NCHW tensors of one dtype, sizes,
// and a stream. Each launcher only enqueues work on `stream` and returns the first CUDA error
// it met (cudaSuccess when every launch went through).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "cuda/common.cuh"  // DType, kMaxKernelSize

namespace atbsn {
namespace cuda {

// One blind-spot conv: x [batch, in_channels, height, width], weight [out_channels, in_channels, k, k],
// zero 'same' padding dilation * (k / 2), active taps = sorted flat indices i * k + j (host memory).
struct ConvParams {
  int64_t batch;
  int in_channels, out_channels, height, width, kernel_size, dilation;
  const int64_t* taps;
  int num_taps;
  bool activation;       // fused LeakyReLU
  float negative_slope;  // its slope (>= 0), used when activation
  DType dtype;
};

// out [N, Cout, H, W] = act(bias + conv(x, weight)); bias [Cout] may be null.
cudaError_t blind_spot_conv2d_forward(const ConvParams& p, const void* x, const void* weight, const void* bias,
                                      void* out, cudaStream_t stream);

// grad_x [N, Cin, H, W] from grad_out [N, Cout, H, W]; out (the forward output) is read only with activation.
cudaError_t blind_spot_conv2d_grad_input(const ConvParams& p, const void* grad_out, const void* out,
                                         const void* weight, void* grad_x, cudaStream_t stream);

// grad_weight [Cout, Cin, k, k] (0 at masked taps); workspace: Cout * Cin * num_taps floats.
cudaError_t blind_spot_conv2d_grad_weight(const ConvParams& p, const void* grad_out, const void* out, const void* x,
                                          float* workspace, void* grad_weight, cudaStream_t stream);

// grad_bias [Cout] = sum over N, H, W of the pre-activation gradient; workspace: Cout floats.
cudaError_t blind_spot_conv2d_grad_bias(const ConvParams& p, const void* grad_out, const void* out, float* workspace,
                                        void* grad_bias, cudaStream_t stream);

}  // namespace cuda
}  // namespace atbsn
