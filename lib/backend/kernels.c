// WASM SIMD kernels for training on the tfjs WASM backend. They run on the
// backend's own memory (this module imports it), take byte offsets of tensors
// on that heap, and use no stack or static data of their own, so they cannot
// clash with the backend's allocator. Build: `deno task build:kernels`.
#include <wasm_simd128.h>

typedef float f32;
typedef v128_t f32x4;

#define EXPORT(name) __attribute__((export_name(#name)))
#define LANE(v, i) wasm_i32x4_shuffle(v, v, i, i, i, i)

// a + b * c: one fused multiply-add where the engine has relaxed SIMD (x86 FMA, Arm FMLA).
#ifdef __wasm_relaxed_simd__
#define MADD(a, b, c) ((f32x4)__builtin_wasm_relaxed_madd_f32x4((__f32x4)(b), (__f32x4)(c), (__f32x4)(a)))
#else
#define MADD(a, b, c) wasm_f32x4_add(a, wasm_f32x4_mul(b, c))
#endif

static inline int max_i(int a, int b) { return a > b ? a : b; }
static inline int min_i(int a, int b) { return a < b ? a : b; }

// Filter gradient of a stride-1, channels-last 2-D convolution, added into dw:
//   dw[i][j][c][k] += sum_{b,o,q} x[b][o+i-pt][q+j-pl][c] * dy[b][o][q][k]
// Needs co % 8 == 0. Four input channels (taps) by eight output channels are
// accumulated in registers while one image's valid pixels stream past; for
// ci % 4 != 0 (the first layer) one tap at a time.
EXPORT(conv2d_filter_grad)
void conv2d_filter_grad(const f32* x, const f32* dy, f32* dw, int n, int h, int w, int ci, int oh, int ow, int co,
                        int kh, int kw, int pt, int pl) {
  for (int b = 0; b < n; b++) {
    const f32* xb = x + (long)b * h * w * ci;
    const f32* dyb = dy + (long)b * oh * ow * co;
    for (int i = 0; i < kh; i++) {
      const int o0 = max_i(0, pt - i), o1 = min_i(oh, h + pt - i);
      for (int j = 0; j < kw; j++) {
        const int q0 = max_i(0, pl - j), q1 = min_i(ow, w + pl - j);
        if (o0 >= o1 || q0 >= q1) continue;
        f32* dwij = dw + (long)(i * kw + j) * ci * co;
        if (ci % 4 == 0) {
          for (int c = 0; c < ci; c += 4) {
            for (int k = 0; k < co; k += 8) {
              f32* d = dwij + (long)c * co + k;
              f32x4 a00 = wasm_v128_load(d), a01 = wasm_v128_load(d + 4);
              f32x4 a10 = wasm_v128_load(d + co), a11 = wasm_v128_load(d + co + 4);
              f32x4 a20 = wasm_v128_load(d + 2 * co), a21 = wasm_v128_load(d + 2 * co + 4);
              f32x4 a30 = wasm_v128_load(d + 3 * co), a31 = wasm_v128_load(d + 3 * co + 4);
              for (int o = o0; o < o1; o++) {
                const f32* xp = xb + ((long)(o + i - pt) * w + (q0 + j - pl)) * ci + c;
                const f32* gp = dyb + ((long)o * ow + q0) * co + k;
                for (int q = q0; q < q1; q++, xp += ci, gp += co) {
                  const f32x4 xv = wasm_v128_load(xp);
                  const f32x4 g0 = wasm_v128_load(gp), g1 = wasm_v128_load(gp + 4);
                  const f32x4 x0 = LANE(xv, 0), x1 = LANE(xv, 1), x2 = LANE(xv, 2), x3 = LANE(xv, 3);
                  a00 = MADD(a00, x0, g0);
                  a01 = MADD(a01, x0, g1);
                  a10 = MADD(a10, x1, g0);
                  a11 = MADD(a11, x1, g1);
                  a20 = MADD(a20, x2, g0);
                  a21 = MADD(a21, x2, g1);
                  a30 = MADD(a30, x3, g0);
                  a31 = MADD(a31, x3, g1);
                }
              }
              wasm_v128_store(d, a00), wasm_v128_store(d + 4, a01);
              wasm_v128_store(d + co, a10), wasm_v128_store(d + co + 4, a11);
              wasm_v128_store(d + 2 * co, a20), wasm_v128_store(d + 2 * co + 4, a21);
              wasm_v128_store(d + 3 * co, a30), wasm_v128_store(d + 3 * co + 4, a31);
            }
          }
        } else {
          for (int c = 0; c < ci; c++) {
            for (int k = 0; k < co; k += 8) {
              f32* d = dwij + (long)c * co + k;
              f32x4 a0 = wasm_v128_load(d), a1 = wasm_v128_load(d + 4);
              for (int o = o0; o < o1; o++) {
                const f32* xp = xb + ((long)(o + i - pt) * w + (q0 + j - pl)) * ci + c;
                const f32* gp = dyb + ((long)o * ow + q0) * co + k;
                for (int q = q0; q < q1; q++, xp += ci, gp += co) {
                  const f32x4 xv = wasm_f32x4_splat(*xp);
                  a0 = MADD(a0, xv, wasm_v128_load(gp));
                  a1 = MADD(a1, xv, wasm_v128_load(gp + 4));
                }
              }
              wasm_v128_store(d, a0), wasm_v128_store(d + 4, a1);
            }
          }
        }
      }
    }
  }
}

// Rows of `channels` floats are reduced in chunks of ROWS_PER_CHUNK: the
// chunk's sums go to part[], then into the total, which keeps float32
// rounding error near that of pairwise summation.
#define ROWS_PER_CHUNK 256

// out[c] = sum_r x[r][c] (or sum_r (x[r][c] - mean[c])^2 when mean is given). channels % 4 == 0.
static void channel_sums(const f32* x, const f32* mean, long rows, int channels, f32* out, f32* part) {
  for (int c = 0; c < channels; c++) out[c] = 0;
  for (long r0 = 0; r0 < rows; r0 += ROWS_PER_CHUNK) {
    const long r1 = r0 + ROWS_PER_CHUNK < rows ? r0 + ROWS_PER_CHUNK : rows;
    for (int c = 0; c < channels; c += 4) wasm_v128_store(part + c, wasm_f32x4_splat(0));
    for (long r = r0; r < r1; r++) {
      const f32* row = x + r * channels;
      for (int c = 0; c < channels; c += 4) {
        f32x4 v = wasm_v128_load(row + c);
        if (mean) {
          v = wasm_f32x4_sub(v, wasm_v128_load(mean + c));
          v = wasm_f32x4_mul(v, v);
        }
        wasm_v128_store(part + c, wasm_f32x4_add(wasm_v128_load(part + c), v));
      }
    }
    for (int c = 0; c < channels; c += 4) {
      wasm_v128_store(out + c, wasm_f32x4_add(wasm_v128_load(out + c), wasm_v128_load(part + c)));
    }
  }
}

// Training-mode batch normalization over all rows (every axis but the channel axis):
//   mean, var (biased), invstd = 1/sqrt(var + eps), y = (x - mean) * invstd * gamma + beta.
// part: `channels` floats of scratch. channels % 4 == 0.
EXPORT(batch_norm_forward)
void batch_norm_forward(const f32* x, const f32* gamma, const f32* beta, f32* y, f32* mean, f32* var, f32* invstd,
                        f32* part, long rows, int channels, f32 eps) {
  channel_sums(x, 0, rows, channels, mean, part);
  for (int c = 0; c < channels; c++) mean[c] /= (f32)rows;
  channel_sums(x, mean, rows, channels, var, part);
  for (int c = 0; c < channels; c++) {
    var[c] /= (f32)rows;
    invstd[c] = 1.0f / __builtin_sqrtf(var[c] + eps);
    part[c] = invstd[c] * gamma[c];  // scale; shift = beta - mean * scale
  }
  for (long r = 0; r < rows; r++) {
    const f32* in = x + r * channels;
    f32* out = y + r * channels;
    for (int c = 0; c < channels; c += 4) {
      const f32x4 centred = wasm_f32x4_sub(wasm_v128_load(in + c), wasm_v128_load(mean + c));
      wasm_v128_store(out + c, MADD(wasm_v128_load(beta + c), centred, wasm_v128_load(part + c)));
    }
  }
}

// Its gradient: dbeta = sum dy, dgamma = sum dy * xhat, with xhat = (x - mean) * invstd,
//   dx = gamma * invstd * (dy - dbeta / m - xhat * dgamma / m).
// scratch: 4 * channels floats. channels % 4 == 0.
EXPORT(batch_norm_backward)
void batch_norm_backward(const f32* dy, const f32* x, const f32* mean, const f32* invstd, const f32* gamma, f32* dx,
                         f32* dgamma, f32* dbeta, f32* scratch, long rows, int channels) {
  f32 *part_dy = scratch, *part_dyx = scratch + channels;
  for (int c = 0; c < channels; c++) dgamma[c] = dbeta[c] = 0;
  for (long r0 = 0; r0 < rows; r0 += ROWS_PER_CHUNK) {
    const long r1 = r0 + ROWS_PER_CHUNK < rows ? r0 + ROWS_PER_CHUNK : rows;
    for (int c = 0; c < channels; c += 4) {
      wasm_v128_store(part_dy + c, wasm_f32x4_splat(0));
      wasm_v128_store(part_dyx + c, wasm_f32x4_splat(0));
    }
    for (long r = r0; r < r1; r++) {
      const f32 *g = dy + r * channels, *in = x + r * channels;
      for (int c = 0; c < channels; c += 4) {
        const f32x4 gv = wasm_v128_load(g + c);
        const f32x4 centred = wasm_f32x4_sub(wasm_v128_load(in + c), wasm_v128_load(mean + c));
        wasm_v128_store(part_dy + c, wasm_f32x4_add(wasm_v128_load(part_dy + c), gv));
        wasm_v128_store(part_dyx + c, MADD(wasm_v128_load(part_dyx + c), gv, centred));
      }
    }
    for (int c = 0; c < channels; c += 4) {
      wasm_v128_store(dbeta + c, wasm_f32x4_add(wasm_v128_load(dbeta + c), wasm_v128_load(part_dy + c)));
      wasm_v128_store(dgamma + c, wasm_f32x4_add(wasm_v128_load(dgamma + c), wasm_v128_load(part_dyx + c)));
    }
  }
  // dx = a * dy + b * x + k per channel.
  f32 *a = scratch, *b = scratch + channels, *k = scratch + 2 * channels;
  const f32 m = (f32)rows;
  for (int c = 0; c < channels; c++) {
    dgamma[c] *= invstd[c];
    a[c] = gamma[c] * invstd[c];
    b[c] = -a[c] * invstd[c] * dgamma[c] / m;
    k[c] = -a[c] * dbeta[c] / m - b[c] * mean[c];
  }
  for (long r = 0; r < rows; r++) {
    const f32 *g = dy + r * channels, *in = x + r * channels;
    f32* out = dx + r * channels;
    for (int c = 0; c < channels; c += 4) {
      f32x4 v = MADD(wasm_v128_load(k + c), wasm_v128_load(a + c), wasm_v128_load(g + c));
      wasm_v128_store(out + c, MADD(v, wasm_v128_load(b + c), wasm_v128_load(in + c)));
    }
  }
}

// ReLU's gradient: dx = x > 0 ? dy : 0. size % 4 == 0.
EXPORT(relu_backward)
void relu_backward(const f32* dy, const f32* x, f32* dx, long size) {
  const f32x4 zero = wasm_f32x4_splat(0);
  for (long i = 0; i < size; i += 4) {
    const f32x4 positive = wasm_f32x4_gt(wasm_v128_load(x + i), zero);
    wasm_v128_store(dx + i, wasm_v128_and(wasm_v128_load(dy + i), positive));
  }
}

// Gradient of 2x2 max pooling with stride 2 (no padding): each window's gradient goes to
// its first maximum (row-major), as tfjs does. dx is fully written.
EXPORT(max_pool_2x2_backward)
void max_pool_2x2_backward(const f32* x, const f32* dy, f32* dx, int n, int h, int w, int c) {
  const int oh = h / 2, ow = w / 2, row = w * c;
  for (int b = 0; b < n; b++) {
    if (h % 2) {  // a last odd row gets no gradient
      for (int j = 0; j < row; j++) dx[((long)b * h + h - 1) * row + j] = 0;
    }
    for (int i = 0; i < oh; i++) {
      for (int j = 0; j < ow; j++) {
        const long base = (((long)b * h + 2 * i) * w + 2 * j) * c;
        const f32* g = dy + (((long)b * oh + i) * ow + j) * c;
        int k = 0;
        for (; k + 4 <= c; k += 4) {
          const long p0 = base + k, p1 = p0 + c, p2 = p0 + row, p3 = p2 + c;
          const f32x4 x0 = wasm_v128_load(x + p0), x1 = wasm_v128_load(x + p1);
          const f32x4 x2 = wasm_v128_load(x + p2), x3 = wasm_v128_load(x + p3);
          const f32x4 m = wasm_f32x4_max(wasm_f32x4_max(x0, x1), wasm_f32x4_max(x2, x3));
          const f32x4 gv = wasm_v128_load(g + k);
          const v128_t e0 = wasm_f32x4_eq(x0, m);
          const v128_t e1 = wasm_v128_andnot(wasm_f32x4_eq(x1, m), e0);
          const v128_t taken = wasm_v128_or(e0, e1);
          const v128_t e2 = wasm_v128_andnot(wasm_f32x4_eq(x2, m), taken);
          const v128_t e3 = wasm_v128_not(wasm_v128_or(taken, e2));
          wasm_v128_store(dx + p0, wasm_v128_and(gv, e0));
          wasm_v128_store(dx + p1, wasm_v128_and(gv, e1));
          wasm_v128_store(dx + p2, wasm_v128_and(gv, e2));
          wasm_v128_store(dx + p3, wasm_v128_and(gv, e3));
        }
        for (; k < c; k++) {  // channels past the last multiple of 4
          const long p0 = base + k, p1 = p0 + c, p2 = p0 + row, p3 = p2 + c;
          long best = p0;
          if (x[p1] > x[best]) best = p1;
          if (x[p2] > x[best]) best = p2;
          if (x[p3] > x[best]) best = p3;
          dx[p0] = dx[p1] = dx[p2] = dx[p3] = 0;
          dx[best] = g[k];
        }
      }
      if (2 * ow < w) {  // a last odd column gets no gradient
        for (int r = 0; r < 2; r++) {
          f32* p = dx + (((long)b * h + 2 * i + r) * w + 2 * ow) * c;
          for (int k = 0; k < c; k++) p[k] = 0;
        }
      }
    }
  }
}

// Inverted dropout: mask[i] = (u < keep) / keep for u uniform in [0, 1) from a
// xorshift32 stream seeded by `seed`; y = x * mask. size % 4 == 0.
EXPORT(dropout_forward)
void dropout_forward(const f32* x, f32* y, f32* mask, long size, f32 keep, unsigned seed) {
  unsigned s = seed ? seed : 0x9e3779b9u;
  const f32 scale = 1.0f / keep;
  const unsigned threshold = (unsigned)(keep * 4294967296.0);
  for (long i = 0; i < size; i++) {
    s ^= s << 13, s ^= s >> 17, s ^= s << 5;
    const f32 m = s < threshold ? scale : 0.0f;
    mask[i] = m;
    y[i] = x[i] * m;
  }
}

