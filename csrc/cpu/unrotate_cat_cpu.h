// C++ CPU kernels of unrotate_cat: AT-BSN's head input in one pass. Semantics: docs/kernel-contract.md.
#pragma once

#include <ATen/ATen.h>

namespace atbsn {

// out [N, 4C, S, S]: the four turns of features [4N, C, S, S] (batch block k = turn k) shifted down
// `shift` rows in their own frames, turned back and concatenated on the channels.
at::Tensor unrotate_cat_cpu(const at::Tensor& features, int64_t shift);

// grad_features [4N, C, S, S] from grad_out [N, 4C, S, S]: the inverse copy, zero in the rows that
// were shifted out.
at::Tensor unrotate_cat_backward_cpu(const at::Tensor& grad_out, int64_t shift);

}  // namespace atbsn
