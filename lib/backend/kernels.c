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

// The micro-kernel of both filter gradients: a 4x8 block of sums (4 rows `ld` apart at d)
// gains the outer products of `count` pairs: 4 values at x (a v128) and 8 at g, strides
// xs and gs floats. All 32 sums stay in registers while the pairs stream past.
static inline void accumulate_4x8(f32* d, int ld, const f32* x, long xs, const f32* g, long gs, long count) {
  f32x4 a00 = wasm_v128_load(d), a01 = wasm_v128_load(d + 4);
  f32x4 a10 = wasm_v128_load(d + ld), a11 = wasm_v128_load(d + ld + 4);
  f32x4 a20 = wasm_v128_load(d + 2 * ld), a21 = wasm_v128_load(d + 2 * ld + 4);
  f32x4 a30 = wasm_v128_load(d + 3 * ld), a31 = wasm_v128_load(d + 3 * ld + 4);
  for (long t = 0; t < count; t++, x += xs, g += gs) {
    const f32x4 xv = wasm_v128_load(x);
    const f32x4 g0 = wasm_v128_load(g), g1 = wasm_v128_load(g + 4);
    const f32x4 x0 = LANE(xv, 0), x1 = LANE(xv, 1), x2 = LANE(xv, 2), x3 = LANE(xv, 3);
    a00 = MADD(a00, x0, g0), a01 = MADD(a01, x0, g1);
    a10 = MADD(a10, x1, g0), a11 = MADD(a11, x1, g1);
    a20 = MADD(a20, x2, g0), a21 = MADD(a21, x2, g1);
    a30 = MADD(a30, x3, g0), a31 = MADD(a31, x3, g1);
  }
  wasm_v128_store(d, a00), wasm_v128_store(d + 4, a01);
  wasm_v128_store(d + ld, a10), wasm_v128_store(d + ld + 4, a11);
  wasm_v128_store(d + 2 * ld, a20), wasm_v128_store(d + 2 * ld + 4, a21);
  wasm_v128_store(d + 3 * ld, a30), wasm_v128_store(d + 3 * ld + 4, a31);
}

// The micro-kernel's one-row case, for a last block of tiles holding one: 8 sums at d gain
// x[t * xs] * g[t * gs .. + 8] over `count` pairs, two pairs at a time in four independent sums.
static inline void accumulate_1x8(f32* d, const f32* x, long xs, const f32* g, long gs, long count) {
  f32x4 a0 = wasm_v128_load(d), a1 = wasm_v128_load(d + 4);
  f32x4 b0 = wasm_f32x4_splat(0.0f), b1 = b0;
  long t = 0;
  for (; t + 1 < count; t += 2, x += 2 * xs, g += 2 * gs) {
    const f32x4 x0 = wasm_v128_load32_splat(x), x1 = wasm_v128_load32_splat(x + xs);
    a0 = MADD(a0, x0, wasm_v128_load(g)), a1 = MADD(a1, x0, wasm_v128_load(g + 4));
    b0 = MADD(b0, x1, wasm_v128_load(g + gs)), b1 = MADD(b1, x1, wasm_v128_load(g + gs + 4));
  }
  if (t < count) {
    const f32x4 x0 = wasm_v128_load32_splat(x);
    a0 = MADD(a0, x0, wasm_v128_load(g)), a1 = MADD(a1, x0, wasm_v128_load(g + 4));
  }
  wasm_v128_store(d, wasm_f32x4_add(a0, b0)), wasm_v128_store(d + 4, wasm_f32x4_add(a1, b1));
}

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
              for (int o = o0; o < o1; o++) {
                const f32* xp = xb + ((long)(o + i - pt) * w + (q0 + j - pl)) * ci + c;
                accumulate_4x8(d, co, xp, ci, dyb + ((long)o * ow + q0) * co + k, co, q1 - q0);
              }
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


// 3x3 "same" convolution, stride 1, by Winograd's minimal filtering F(2x2, 3x3)
// (Lavin & Gray 2016): each 2x2 block of output pixels ("tile") costs 16
// multiply-adds per input and output channel instead of 36. The filter is
// transformed once (U = G g G^T), each 4x4 input patch is transformed
// (V = B^T d B), the 16 transformed positions are 16 independent matrix
// products M = V U over the channels, and A^T M A gives the 2x2 outputs.
// Images go in chunks whose scratch fits in the cache.

// U[16][cout/8][cin][8] from a 3x3 filter: g[3][3][cin][cout], or with `flip` the
// input gradient's filter g'[i][j][c][k] = g[2-i][2-j][k][c] of g[3][3][cout][cin].
// Each position's matrix is stored in panels of eight output channels, so the
// products read it in one contiguous stream. Four output channels at a time
// (cout % 8 == 0): G w G^T on vectors, each read and write contiguous.
EXPORT(winograd_filter)
void winograd_filter(const f32* g, f32* u, int cin, int cout, int flip) {
  const f32x4 half = wasm_f32x4_splat(0.5f);
  const long plane = (long)cin * cout;
  for (int c = 0; c < cin; c++) {
    for (int k = 0; k < cout; k += 4) {
      f32x4 w[3][3];
      for (int i = 0; i < 3; i++) {
        for (int j = 0; j < 3; j++) {
          if (flip) {
            const f32* src = g + ((long)((2 - i) * 3 + (2 - j)) * cout + k) * cin + c;
            w[i][j] = wasm_f32x4_make(src[0], src[cin], src[2 * cin], src[3 * cin]);
          } else {
            w[i][j] = wasm_v128_load(g + (i * 3 + j) * plane + (long)c * cout + k);
          }
        }
      }
      f32x4 t[4][3];  // G w
      for (int j = 0; j < 3; j++) {
        t[0][j] = w[0][j];
        t[1][j] = wasm_f32x4_mul(half, wasm_f32x4_add(wasm_f32x4_add(w[0][j], w[1][j]), w[2][j]));
        t[2][j] = wasm_f32x4_mul(half, wasm_f32x4_add(wasm_f32x4_sub(w[0][j], w[1][j]), w[2][j]));
        t[3][j] = w[2][j];
      }
      f32* dst = u + (long)(k / 8) * cin * 8 + (long)c * 8 + k % 8;
      for (int a = 0; a < 4; a++) {  // (G w) G^T
        wasm_v128_store(dst + (a * 4 + 0) * plane, t[a][0]);
        wasm_v128_store(dst + (a * 4 + 1) * plane,
                        wasm_f32x4_mul(half, wasm_f32x4_add(wasm_f32x4_add(t[a][0], t[a][1]), t[a][2])));
        wasm_v128_store(dst + (a * 4 + 2) * plane,
                        wasm_f32x4_mul(half, wasm_f32x4_add(wasm_f32x4_sub(t[a][0], t[a][1]), t[a][2])));
        wasm_v128_store(dst + (a * 4 + 3) * plane, t[a][2]);
      }
    }
  }
}

// s = B^T d of the 4x4 input tile d whose top-left pixel is (y0, x0) of image b, channels c..c+3
// (pixels outside the image, or all of them when !inside, read as zero).
static inline __attribute__((always_inline)) void winograd_input_cols(const f32* x, long b, int y0, int x0, int h,
                                                                      int w, int ci, int c, int inside,
                                                                      f32x4 s[4][4]) {
  const f32x4 zero = wasm_f32x4_splat(0);
  f32x4 d[4][4];
  for (int i = 0; i < 4; i++) {
    for (int j = 0; j < 4; j++) {
      const int yy = y0 + i, xx = x0 + j;
      d[i][j] = inside && yy >= 0 && yy < h && xx >= 0 && xx < w ? wasm_v128_load(x + ((b * h + yy) * w + xx) * ci + c)
                                                                  : zero;
    }
  }
  for (int j = 0; j < 4; j++) {
    s[0][j] = wasm_f32x4_sub(d[0][j], d[2][j]);
    s[1][j] = wasm_f32x4_add(d[1][j], d[2][j]);
    s[2][j] = wasm_f32x4_sub(d[2][j], d[1][j]);
    s[3][j] = wasm_f32x4_sub(d[1][j], d[3][j]);
  }
}

// e = row a of (B^T d) B, from row s = (B^T d)[a]: positions a * 4 + 0..3 of the 16.
static inline __attribute__((always_inline)) void winograd_input_row(const f32x4 s[4], f32x4 e[4]) {
  e[0] = wasm_f32x4_sub(s[0], s[2]);
  e[1] = wasm_f32x4_add(s[1], s[2]);
  e[2] = wasm_f32x4_sub(s[2], s[1]);
  e[3] = wasm_f32x4_sub(s[1], s[3]);
}

// V[16][tiles/4][ci][4] of the tiles of images b0..b0+nb (rows past `tiles` zeroed). ci % 4 == 0.
static void winograd_input(const f32* x, f32* v, int b0, int nb, int h, int w, int ci, long tiles_padded) {
  const int th = h / 2, tw = w / 2;
  const long tiles = (long)nb * th * tw, panel = (long)ci * 4;
  for (long t = 0; t < tiles_padded; t++) {
    const long b = b0 + t / ((long)th * tw), r = t % ((long)th * tw);
    const int y0 = 2 * (int)(r / tw) - 1, x0 = 2 * (int)(r % tw) - 1;
    f32* vt = v + (t / 4) * panel + t % 4;
    for (int c = 0; c < ci; c += 4) {
      f32x4 s[4][4], e[4];
      winograd_input_cols(x, b, y0, x0, h, w, ci, c, t < tiles, s);
      for (int a = 0; a < 4; a++) {
        winograd_input_row(s[a], e);
        for (int bb = 0; bb < 4; bb++) {  // scattered: lane l is channel c + l
          f32* dst = vt + (long)(a * 4 + bb) * (tiles_padded / 4) * panel + (long)c * 4;
          dst[0] = wasm_f32x4_extract_lane(e[bb], 0);
          dst[4] = wasm_f32x4_extract_lane(e[bb], 1);
          dst[8] = wasm_f32x4_extract_lane(e[bb], 2);
          dst[12] = wasm_f32x4_extract_lane(e[bb], 3);
        }
      }
    }
  }
}

// M[xi][t][k] = sum_c V[xi][t][c] U[xi][c][k] for the transformed positions xi (16 for F(2x2, 3x3),
// 36 for F(4x4, 3x3); U in panels of 8). co % 8 == 0. A last block holding one tile (a 6x6 map at
// batch 1: 9 tiles) takes the one-row kernel.
static void winograd_products(const f32* v, const f32* u, f32* m, long tiles, long tiles_padded, int ci, int co,
                              int positions) {
  const long blocks = tiles_padded / 4, panel = (long)ci * 4, full = tiles % 4 == 1 ? blocks - 1 : blocks;
  __builtin_memset(m, 0, positions * tiles_padded * co * sizeof(f32));
  for (int xi = 0; xi < positions; xi++) {
    const f32* vx = v + (long)xi * blocks * panel;
    const f32* ux = u + (long)xi * ci * co;
    f32* mx = m + (long)xi * tiles_padded * co;
    for (int k = 0; k < co; k += 8) {
      const f32* uk = ux + (long)k * ci;
      for (long tb = 0; tb < full; tb++) accumulate_4x8(mx + tb * 4 * co + k, co, vx + tb * panel, 4, uk, 8, ci);
      if (full < blocks) accumulate_1x8(mx + full * 4 * co + k, vx + full * panel, 4, uk, 8, ci);
    }
  }
}

// The 2x2 outputs A^T M A of each tile of images b0..b0+nb, into out [n][h][w][co], plus
// bias [co] when bias is not null, then max(0, .) when relu.
static void winograd_output(const f32* m, f32* out, const f32* bias, int relu, int b0, int nb, int h, int w, int co,
                            long tiles_padded) {
  const int th = h / 2, tw = w / 2;
  const long tiles = (long)nb * th * tw, plane = tiles_padded * co;
  for (long t = 0; t < tiles; t++) {
    const long b = b0 + t / ((long)th * tw), r = t % ((long)th * tw);
    const int y0 = 2 * (int)(r / tw), x0 = 2 * (int)(r % tw);
    const f32* mt = m + t * co;
    f32* o = out + ((b * h + y0) * w + x0) * co;
    for (int k = 0; k < co; k += 4) {
      f32x4 q[4][4];
      for (int a = 0; a < 4; a++) {
        for (int bb = 0; bb < 4; bb++) q[a][bb] = wasm_v128_load(mt + (a * 4 + bb) * plane + k);
      }
      f32x4 s[2][4];  // A^T q
      for (int j = 0; j < 4; j++) {
        s[0][j] = wasm_f32x4_add(wasm_f32x4_add(q[0][j], q[1][j]), q[2][j]);
        s[1][j] = wasm_f32x4_sub(wasm_f32x4_sub(q[1][j], q[2][j]), q[3][j]);
      }
      const f32x4 shift = bias ? wasm_v128_load(bias + k) : wasm_f32x4_splat(0.0f);
      const f32x4 low = wasm_f32x4_splat(relu ? 0.0f : -__builtin_inff());
      for (int i = 0; i < 2; i++) {  // (A^T q) A, shifted and clamped
        f32* row = o + (long)i * w * co + k;
        const f32x4 left = wasm_f32x4_add(wasm_f32x4_add(wasm_f32x4_add(s[i][0], s[i][1]), s[i][2]), shift);
        const f32x4 right = wasm_f32x4_add(wasm_f32x4_sub(wasm_f32x4_sub(s[i][1], s[i][2]), s[i][3]), shift);
        wasm_v128_store(row, wasm_f32x4_pmax(left, low));
        wasm_v128_store(row + co, wasm_f32x4_pmax(right, low));
      }
    }
  }
}

// out = conv3x3_same(x, filter) with u = winograd_filter(filter), plus bias [co] when bias is not
// null, then ReLU when relu. x [n][h][w][ci], h and w even, ci % 4 == 0, co % 8 == 0. Scratch v:
// 16 * P * ci floats and m: 16 * P * co floats, where P = the tiles of `chunk` images, rounded up
// to a multiple of 4.
EXPORT(winograd_conv3x3)
void winograd_conv3x3(const f32* x, const f32* u, f32* out, f32* v, f32* m, const f32* bias, int relu, int n, int h,
                      int w, int ci, int co, int chunk) {
  for (int b0 = 0; b0 < n; b0 += chunk) {
    const int nb = b0 + chunk <= n ? chunk : n - b0;
    const long tiles = (long)nb * (h / 2) * (w / 2), tiles_padded = (tiles + 3) / 4 * 4;
    winograd_input(x, v, b0, nb, h, w, ci, tiles_padded);
    winograd_products(v, u, m, tiles, tiles_padded, ci, co, 16);
    winograd_output(m, out, bias, relu, b0, nb, h, w, co, tiles_padded);
  }
}

// The same convolution by F(4x4, 3x3) (Lavin & Gray 2016, points 0, +-1, +-2): each 4x4 block of
// outputs costs 36 multiply-adds per input and output channel, against 64 for four F(2x2) tiles,
// for larger transforms. For prediction, where the filter's transform is kept between calls.

// U[36][cout/8][cin][8] = G g G^T of a 3x3 filter g[3][3][cin][cout], in panels of eight output
// channels as winograd_filter's. cout % 8 == 0.
EXPORT(winograd4_filter)
void winograd4_filter(const f32* g, f32* u, int cin, int cout) {
  const long plane = (long)cin * cout;
  const f32x4 c4 = wasm_f32x4_splat(1.0f / 4), c6 = wasm_f32x4_splat(1.0f / 6), c12 = wasm_f32x4_splat(1.0f / 12),
              c24 = wasm_f32x4_splat(1.0f / 24);
  for (int c = 0; c < cin; c++) {
    for (int k = 0; k < cout; k += 4) {
      f32x4 w[3][3], t[6][3];
      #pragma unroll
      for (int i = 0; i < 3; i++) {
        #pragma unroll
        for (int j = 0; j < 3; j++) w[i][j] = wasm_v128_load(g + (i * 3 + j) * plane + (long)c * cout + k);
      }
      #pragma unroll
      for (int j = 0; j < 3; j++) {  // G w
        const f32x4 a = w[0][j], b = w[1][j], d = w[2][j];
        t[0][j] = wasm_f32x4_mul(a, c4);
        t[1][j] = wasm_f32x4_neg(wasm_f32x4_mul(wasm_f32x4_add(wasm_f32x4_add(a, b), d), c6));
        t[2][j] = wasm_f32x4_neg(wasm_f32x4_mul(wasm_f32x4_add(wasm_f32x4_sub(a, b), d), c6));
        const f32x4 even = wasm_f32x4_add(wasm_f32x4_mul(a, c24), wasm_f32x4_mul(d, c6)), odd = wasm_f32x4_mul(b, c12);
        t[3][j] = wasm_f32x4_add(even, odd);
        t[4][j] = wasm_f32x4_sub(even, odd);
        t[5][j] = d;
      }
      f32* dst = u + (long)(k / 8) * cin * 8 + (long)c * 8 + k % 8;
      #pragma unroll
      for (int r = 0; r < 6; r++) {  // (G w) G^T
        const f32x4 a = t[r][0], b = t[r][1], d = t[r][2];
        const f32x4 even = wasm_f32x4_add(wasm_f32x4_mul(a, c24), wasm_f32x4_mul(d, c6)), odd = wasm_f32x4_mul(b, c12);
        wasm_v128_store(dst + (r * 6 + 0) * plane, wasm_f32x4_mul(a, c4));
        wasm_v128_store(dst + (r * 6 + 1) * plane,
                        wasm_f32x4_neg(wasm_f32x4_mul(wasm_f32x4_add(wasm_f32x4_add(a, b), d), c6)));
        wasm_v128_store(dst + (r * 6 + 2) * plane,
                        wasm_f32x4_neg(wasm_f32x4_mul(wasm_f32x4_add(wasm_f32x4_sub(a, b), d), c6)));
        wasm_v128_store(dst + (r * 6 + 3) * plane, wasm_f32x4_add(even, odd));
        wasm_v128_store(dst + (r * 6 + 4) * plane, wasm_f32x4_sub(even, odd));
        wasm_v128_store(dst + (r * 6 + 5) * plane, d);
      }
    }
  }
}

// e = B^T d for one column (or row) of six: F(4x4, 3x3)'s input transform.
static inline __attribute__((always_inline)) void winograd4_b(const f32x4 d[6], f32x4 e[6]) {
  const f32x4 four = wasm_f32x4_splat(4.0f), five = wasm_f32x4_splat(5.0f), two = wasm_f32x4_splat(2.0f);
  const f32x4 p = wasm_f32x4_sub(d[4], wasm_f32x4_mul(four, d[2])), q = wasm_f32x4_sub(d[3], wasm_f32x4_mul(four, d[1]));
  const f32x4 r = wasm_f32x4_sub(d[4], d[2]), s = wasm_f32x4_mul(two, wasm_f32x4_sub(d[3], d[1]));
  e[0] = wasm_f32x4_add(wasm_f32x4_sub(wasm_f32x4_mul(four, d[0]), wasm_f32x4_mul(five, d[2])), d[4]);
  e[1] = wasm_f32x4_add(p, q);
  e[2] = wasm_f32x4_sub(p, q);
  e[3] = wasm_f32x4_add(r, s);
  e[4] = wasm_f32x4_sub(r, s);
  e[5] = wasm_f32x4_add(wasm_f32x4_sub(wasm_f32x4_mul(four, d[1]), wasm_f32x4_mul(five, d[3])), d[5]);
}

// V[36][tiles/4][ci][4] of the 4x4-output tiles of images b0..b0+nb (rows past `tiles` zeroed); each
// tile reads the 6x6 input patch at (4 ty - 1, 4 tx - 1), zero outside the image. ci % 4 == 0.
static void winograd4_input(const f32* x, f32* v, int b0, int nb, int h, int w, int ci, long tiles_padded) {
  const int th = h / 4, tw = w / 4;
  const long tiles = (long)nb * th * tw, panel = (long)ci * 4;
  const f32x4 zero = wasm_f32x4_splat(0);
  for (long t = 0; t < tiles_padded; t++) {
    const long b = b0 + t / ((long)th * tw), r = t % ((long)th * tw);
    const int y0 = 4 * (int)(r / tw) - 1, x0 = 4 * (int)(r % tw) - 1;
    f32* vt = v + (t / 4) * panel + t % 4;
    for (int c = 0; c < ci; c += 4) {
      f32x4 col[6], s[6][6], row[6], e[6];
      #pragma unroll
      for (int j = 0; j < 6; j++) {  // s = B^T d, a column at a time
        #pragma unroll
        for (int i = 0; i < 6; i++) {
          const int yy = y0 + i, xx = x0 + j;
          col[i] = t < tiles && yy >= 0 && yy < h && xx >= 0 && xx < w
                     ? wasm_v128_load(x + ((b * h + yy) * w + xx) * ci + c)
                     : zero;
        }
        winograd4_b(col, e);
        #pragma unroll
        for (int i = 0; i < 6; i++) s[i][j] = e[i];
      }
      #pragma unroll
      for (int a = 0; a < 6; a++) {  // (B^T d) B, a row at a time
        #pragma unroll
        for (int j = 0; j < 6; j++) row[j] = s[a][j];
        winograd4_b(row, e);
        #pragma unroll
        for (int bb = 0; bb < 6; bb++) {  // scattered: lane l is channel c + l
          f32* dst = vt + (long)(a * 6 + bb) * (tiles_padded / 4) * panel + (long)c * 4;
          dst[0] = wasm_f32x4_extract_lane(e[bb], 0);
          dst[4] = wasm_f32x4_extract_lane(e[bb], 1);
          dst[8] = wasm_f32x4_extract_lane(e[bb], 2);
          dst[12] = wasm_f32x4_extract_lane(e[bb], 3);
        }
      }
    }
  }
}

// y = A^T q for one column (or row) of six: F(4x4, 3x3)'s output transform.
static inline __attribute__((always_inline)) void winograd4_a(const f32x4 q[6], f32x4 y[4]) {
  const f32x4 two = wasm_f32x4_splat(2.0f), four = wasm_f32x4_splat(4.0f), eight = wasm_f32x4_splat(8.0f);
  const f32x4 sum12 = wasm_f32x4_add(q[1], q[2]), dif12 = wasm_f32x4_sub(q[1], q[2]);
  const f32x4 sum34 = wasm_f32x4_add(q[3], q[4]), dif34 = wasm_f32x4_sub(q[3], q[4]);
  y[0] = wasm_f32x4_add(wasm_f32x4_add(q[0], sum12), sum34);
  y[1] = wasm_f32x4_add(dif12, wasm_f32x4_mul(two, dif34));
  y[2] = wasm_f32x4_add(sum12, wasm_f32x4_mul(four, sum34));
  y[3] = wasm_f32x4_add(wasm_f32x4_add(dif12, wasm_f32x4_mul(eight, dif34)), q[5]);
}

// The 4x4 outputs A^T M A of each tile of images b0..b0+nb, into out [n][h][w][co], plus bias [co]
// when bias is not null, then max(0, .) when relu. h % 4 == 0, w % 4 == 0.
static void winograd4_output(const f32* m, f32* out, const f32* bias, int relu, int b0, int nb, int h, int w, int co,
                             long tiles_padded) {
  const int th = h / 4, tw = w / 4;
  const long tiles = (long)nb * th * tw, plane = tiles_padded * co;
  for (long t = 0; t < tiles; t++) {
    const long b = b0 + t / ((long)th * tw), r = t % ((long)th * tw);
    const int y0 = 4 * (int)(r / tw), x0 = 4 * (int)(r % tw);
    const f32* mt = m + t * co;
    f32* o = out + ((b * h + y0) * w + x0) * co;
    for (int k = 0; k < co; k += 4) {
      f32x4 col[6], s[4][6], row[6], y[4];
      #pragma unroll
      for (int j = 0; j < 6; j++) {  // s = A^T q, a column at a time
        #pragma unroll
        for (int i = 0; i < 6; i++) col[i] = wasm_v128_load(mt + (i * 6 + j) * plane + k);
        winograd4_a(col, y);
        #pragma unroll
        for (int i = 0; i < 4; i++) s[i][j] = y[i];
      }
      const f32x4 shift = bias ? wasm_v128_load(bias + k) : wasm_f32x4_splat(0.0f);
      const f32x4 low = wasm_f32x4_splat(relu ? 0.0f : -__builtin_inff());
      #pragma unroll
      for (int i = 0; i < 4; i++) {  // (A^T q) A, shifted and clamped
        #pragma unroll
        for (int j = 0; j < 6; j++) row[j] = s[i][j];
        winograd4_a(row, y);
        f32* line = o + (long)i * w * co + k;
        #pragma unroll
        for (int j = 0; j < 4; j++) wasm_v128_store(line + (long)j * co, wasm_f32x4_pmax(wasm_f32x4_add(y[j], shift), low));
      }
    }
  }
}

// out = conv3x3_same(x, filter) by F(4x4, 3x3) with u = winograd4_filter(filter), plus bias [co]
// when bias is not null, then ReLU when relu. x [n][h][w][ci], h % 4 == 0, w % 4 == 0, ci % 4 == 0,
// co % 8 == 0. Scratch v: 36 * P * ci floats and m: 36 * P * co floats, where P = the 4x4 tiles of
// `chunk` images, rounded up to a multiple of 4.
EXPORT(winograd4_conv3x3)
void winograd4_conv3x3(const f32* x, const f32* u, f32* out, f32* v, f32* m, const f32* bias, int relu, int n, int h,
                       int w, int ci, int co, int chunk) {
  for (int b0 = 0; b0 < n; b0 += chunk) {
    const int nb = b0 + chunk <= n ? chunk : n - b0;
    const long tiles = (long)nb * (h / 4) * (w / 4), tiles_padded = (tiles + 3) / 4 * 4;
    winograd4_input(x, v, b0, nb, h, w, ci, tiles_padded);
    winograd_products(v, u, m, tiles, tiles_padded, ci, co, 36);
    winograd4_output(m, out, bias, relu, b0, nb, h, w, co, tiles_padded);
  }
}

// The filter gradient of the same convolution, through the same transforms:
// with y = A^T [(G g G^T) . (B^T d B)] A per tile, the gradient is
//   dg = G^T [sum over tiles (B^T d B) . (A dy A^T)] G,
// a sum over tiles of 16 products per input and output channel, instead of
// 36 over pixels.

// V[16][t][ci] of the tiles of images b0..b0+nb (channels contiguous). ci % 4 == 0.
static void winograd_input_rows(const f32* x, f32* v, int b0, int nb, int h, int w, int ci) {
  const int th = h / 2, tw = w / 2;
  const long tiles = (long)nb * th * tw;
  for (long t = 0; t < tiles; t++) {
    const long b = b0 + t / ((long)th * tw), r = t % ((long)th * tw);
    const int y0 = 2 * (int)(r / tw) - 1, x0 = 2 * (int)(r % tw) - 1;
    for (int c = 0; c < ci; c += 4) {
      f32x4 s[4][4], e[4];
      winograd_input_cols(x, b, y0, x0, h, w, ci, c, 1, s);
      for (int a = 0; a < 4; a++) {
        winograd_input_row(s[a], e);
        for (int bb = 0; bb < 4; bb++) wasm_v128_store(v + ((long)(a * 4 + bb) * tiles + t) * ci + c, e[bb]);
      }
    }
  }
}

// Y[16][t][co] = A q A^T for each 2x2 tile q of dy, A = [1 0; 1 1; 1 -1; 0 -1]. co % 4 == 0.
static void winograd_grad_rows(const f32* dy, f32* y, int b0, int nb, int h, int w, int co) {
  const int th = h / 2, tw = w / 2;
  const long tiles = (long)nb * th * tw;
  for (long t = 0; t < tiles; t++) {
    const long b = b0 + t / ((long)th * tw), r = t % ((long)th * tw);
    const f32* q = dy + ((b * h + 2 * (r / tw)) * w + 2 * (r % tw)) * co;
    for (int k = 0; k < co; k += 4) {
      const f32x4 q00 = wasm_v128_load(q + k), q01 = wasm_v128_load(q + co + k);
      const f32x4 q10 = wasm_v128_load(q + (long)w * co + k), q11 = wasm_v128_load(q + (long)w * co + co + k);
      const f32x4 rows[4][2] = {{q00, q01},
                                {wasm_f32x4_add(q00, q10), wasm_f32x4_add(q01, q11)},
                                {wasm_f32x4_sub(q00, q10), wasm_f32x4_sub(q01, q11)},
                                {wasm_f32x4_neg(q10), wasm_f32x4_neg(q11)}};
      for (int a = 0; a < 4; a++) {
        f32* dst = y + ((long)(a * 4) * tiles + t) * co + k;
        wasm_v128_store(dst, rows[a][0]);
        wasm_v128_store(dst + tiles * co, wasm_f32x4_add(rows[a][0], rows[a][1]));
        wasm_v128_store(dst + 2 * tiles * co, wasm_f32x4_sub(rows[a][0], rows[a][1]));
        wasm_v128_store(dst + 3 * tiles * co, wasm_f32x4_neg(rows[a][1]));
      }
    }
  }
}

// M[xi][c][k] += sum_t V[xi][t][c] Y[xi][t][k]. ci % 4 == 0, co % 8 == 0.
static void winograd_grad_products(const f32* v, const f32* y, f32* m, long tiles, int ci, int co) {
  for (int xi = 0; xi < 16; xi++) {
    const f32* vx = v + (long)xi * tiles * ci;
    const f32* yx = y + (long)xi * tiles * co;
    f32* mx = m + (long)xi * ci * co;
    for (int c = 0; c < ci; c += 4) {
      for (int k = 0; k < co; k += 8) {
        accumulate_4x8(mx + (long)c * co + k, co, vx + c, ci, yx + k, co, tiles);
      }
    }
  }
}

// dw [3][3][ci][co] of the 3x3 "same" convolution of x [n][h][w][ci] giving dy [n][h][w][co]:
// h and w even, ci % 4 == 0, co % 8 == 0. Scratch v: 16 * T * ci, y: 16 * T * co and
// m: 16 * ci * co floats, where T = the tiles of `chunk` images.
EXPORT(winograd_filter_grad3x3)
void winograd_filter_grad3x3(const f32* x, const f32* dy, f32* dw, f32* v, f32* y, f32* m, int n, int h, int w,
                             int ci, int co, int chunk) {
  __builtin_memset(m, 0, 16L * ci * co * sizeof(f32));
  for (int b0 = 0; b0 < n; b0 += chunk) {
    const int nb = b0 + chunk <= n ? chunk : n - b0;
    const long tiles = (long)nb * (h / 2) * (w / 2);
    winograd_input_rows(x, v, b0, nb, h, w, ci);
    winograd_grad_rows(dy, y, b0, nb, h, w, co);
    winograd_grad_products(v, y, m, tiles, ci, co);
  }
  // dw = G^T M G, G^T = [1 .5 .5 0; 0 .5 -.5 0; 0 .5 .5 1].
  const long plane = (long)ci * co;
  for (long e = 0; e < plane; e++) {
    f32 s[3][4];
    for (int b = 0; b < 4; b++) {
      const f32 m0 = m[(0 * 4 + b) * plane + e], m1 = m[(1 * 4 + b) * plane + e];
      const f32 m2 = m[(2 * 4 + b) * plane + e], m3 = m[(3 * 4 + b) * plane + e];
      s[0][b] = m0 + 0.5f * (m1 + m2);
      s[1][b] = 0.5f * (m1 - m2);
      s[2][b] = 0.5f * (m1 + m2) + m3;
    }
    for (int i = 0; i < 3; i++) {
      dw[(i * 3 + 0) * plane + e] = s[i][0] + 0.5f * (s[i][1] + s[i][2]);
      dw[(i * 3 + 1) * plane + e] = 0.5f * (s[i][1] - s[i][2]);
      dw[(i * 3 + 2) * plane + e] = 0.5f * (s[i][1] + s[i][2]) + s[i][3];
    }
  }
}
