// Conv2DBackpropFilter for a tfjs WASM backend that lacks it (the page's,
// bundled in face-api). tfjs-layers convolves with fused conv2d, whose
// gradient computes the filter's gradient even when only the input's is
// asked for, so saliency maps (saliency.js) need this kernel. Plain
// JavaScript loops, NHWC, for the few faces of a photo; Deno registers its
// own native SIMD kernel instead (lib/backend/conv.ts).

/**
 * The kernel function: dW[fy, fx, ci, co] = sum over batch and output
 * positions of x[b, iy, ix, ci] * dy[b, oy, ox, co].
 * @param {any} tf the tfjs module whose backend_util computes the geometry
 * @returns {(args: { inputs: { x: any; dy: any }; backend: any; attrs: any }) => any}
 */
export function filterGradientKernel(tf) {
  return ({ inputs, backend, attrs }) => {
    const { x, dy } = inputs;
    const { strides, pad, dataFormat, dimRoundingMode, filterShape } = attrs;
    if (dataFormat === "NCHW") throw new Error("Conv2DBackpropFilter: only NHWC is supported");
    const info = tf.backend_util.computeConv2DInfo(x.shape, filterShape, strides, 1, pad, dimRoundingMode);
    const xs = backend.readSync(x.dataId), dys = backend.readSync(dy.dataId);
    const out = backend.makeOutput(filterShape, "float32");
    const dw = backend.typedArrayFromHeap(out).fill(0);
    const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, outChannels } = info;
    const { filterHeight, filterWidth, strideHeight, strideWidth, dilationHeight, dilationWidth } = info;
    const { top, left } = info.padInfo;
    for (let b = 0; b < batchSize; b++) {
      for (let oy = 0; oy < outHeight; oy++) {
        for (let ox = 0; ox < outWidth; ox++) {
          const dyAt = ((b * outHeight + oy) * outWidth + ox) * outChannels;
          for (let fy = 0; fy < filterHeight; fy++) {
            const iy = oy * strideHeight - top + fy * dilationHeight;
            if (iy < 0 || iy >= inHeight) continue;
            for (let fx = 0; fx < filterWidth; fx++) {
              const ix = ox * strideWidth - left + fx * dilationWidth;
              if (ix < 0 || ix >= inWidth) continue;
              const xAt = ((b * inHeight + iy) * inWidth + ix) * inChannels;
              const dwAt = (fy * filterWidth + fx) * inChannels * outChannels;
              for (let ci = 0; ci < inChannels; ci++) {
                const v = xs[xAt + ci], row = dwAt + ci * outChannels;
                for (let co = 0; co < outChannels; co++) dw[row + co] += v * dys[dyAt + co];
              }
            }
          }
        }
      }
    }
    return out;
  };
}

/**
 * Register the kernel on the "wasm" backend of `tf`, unless it has one.
 * @param {any} tf
 */
export function registerFilterGradient(tf) {
  if (tf.getKernel("Conv2DBackpropFilter", "wasm")) return;
  tf.registerKernel({ kernelName: "Conv2DBackpropFilter", backendName: "wasm", kernelFunc: filterGradientKernel(tf) });
}
