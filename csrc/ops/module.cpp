// Python module of the extension: the ops register themselves with torch.library on load;
// this module only reports how it was built.
#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <stdexcept>

#include "cpu/blind_spot_conv2d_cpu.h"

namespace {

bool cuda_built() {
#ifdef WITH_CUDA
  return true;
#else
  return false;
#endif
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "atbsn C++/CUDA kernels; the ops live in torch.ops.atbsn";
  m.def("cuda_built", &cuda_built, "True when the CUDA kernels were compiled in");
  m.def("openmp_max_threads", &at::get_num_threads, "threads ATen's parallel_for uses");
  m.def("cpu_kernel_config", &atbsn::cpu_kernel_config,
        "how the CPU kernels run here: microkernel ISA (ATBSN_CPU_ISA) and cache-derived blocking");
}
