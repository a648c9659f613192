#pragma once
#include "nn/linear.h"

namespace zimage {

// FeedForward parameters: w1, w3 [F, C], w2 [C, F], no bias.
template <class T>
struct FeedForwardW {
  LinearW<T> w1, w2, w3;
};

// Ref: transformer_z_image.py FeedForward.forward
// x [..., C] -> [..., C]: w2(silu(w1(x)) * w3(x)), F = int(C / 3 * 8).
template <class T>
Tensor<T> feed_forward(const Tensor<T>& x, const FeedForwardW<T>& w, Activations<T>* acts = nullptr,
                       const std::string& path = "feed_forward") {
  Tensor<T> h1 = linear(x, w.w1);
  const Tensor<T> h3 = linear(x, w.w3);
  record(acts, path + ".w1", h1);
  record(acts, path + ".w3", h3);
  silu_(h1.ptr(), h1.numel(), h3.ptr());
  Tensor<T> out = linear(h1, w.w2);
  record(acts, path + ".w2", out);
  record(acts, path, out);
  return out;
}

}  // namespace zimage
