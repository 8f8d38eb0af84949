// Where a network looks: SmoothGrad saliency (Smilkov et al. 2017), the mean
// absolute gradient of a class probability with respect to the input pixels
// over a few noisy copies of the image. A gradient method rather than
// Grad-CAM, because it needs nothing of the model but its input and output:
// it works the same for one network and for an ensemble (outputs/model-ensemble: several
// conv trunks averaged), where Grad-CAM has no single last conv layer.
// Plain JavaScript taking the tfjs module as an argument, so Deno
// (lib/eval/saliency.ts) and the page (app.js) run this same code.

/**
 * Saliency maps [n * height * width] of `images` ([n, height, width, 1],
 * normalized as the model expects) for class `classes[i]` of image i (default:
 * its predicted class), each scaled to 0..1 by its own maximum.
 * @param {any} tf the tfjs module (Deno's or the browser's)
 * @param {any} model a tf.LayersModel whose output is class probabilities
 * @param {any} images a [n, height, width, 1] tensor
 * @param {number[]} [classes]
 * @param {{ samples?: number; noise?: number; seed?: number }} [options]
 *   samples: noisy copies averaged per image (1 = the plain gradient);
 *   noise: their standard deviation in input units (images are 0..1).
 * @returns {Promise<Float32Array>}
 */
export async function saliencyMaps(tf, model, images, classes, options = {}) {
  const { samples = 8, noise = 0.1, seed = 1 } = options;
  const [n, height, width] = images.shape;
  let targets = classes;
  if (!targets) {
    const predicted = tf.tidy(() => model.predict(images).argMax(-1));
    targets = Array.from(await predicted.data());
    predicted.dispose();
  }
  const mask = tf.tidy(() => tf.oneHot(tf.tensor1d(targets, "int32"), model.outputs[0].shape[1]));
  const score = (x) => model.apply(x, { training: false }).mul(mask).sum();
  let total = tf.zeros([n, height, width, 1]);
  for (let s = 0; s < samples; s++) {
    const next = tf.tidy(() => {
      const noisy = samples === 1 ? images : images.add(tf.randomNormal(images.shape, 0, noise, "float32", seed + s));
      return total.add(tf.grad(score)(noisy).abs());
    });
    total.dispose();
    total = next;
  }
  const maps = tf.tidy(() => {
    const flat = total.reshape([n, height * width]);
    return flat.div(flat.max(1, true).add(1e-12));
  });
  const out = await maps.data();
  tf.dispose([total, maps, mask]);
  return out;
}

/**
 * The overlay colour of a saliency value (0..1) as [r, g, b, a]: transparent
 * where the pixel barely moves the answer (under 15% of the peak), then red
 * to yellow, more opaque, where it moves it most. The page and the notebook
 * draw maps with it.
 * @param {number} v
 * @returns {[number, number, number, number]}
 */
export function heatColour(v) {
  return [255, Math.round(255 * v), 0, Math.round(220 * Math.min(1, Math.max(0, (v - 0.15) / 0.6)))];
}
