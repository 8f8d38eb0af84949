/**
 * Where a network looks: SmoothGrad saliency (Smilkov et al. 2017), the mean
 * absolute gradient of a class probability with respect to the input pixels
 * over a few noisy copies of the image. A gradient method rather than
 * Grad-CAM, because it needs nothing of the model but its input and output:
 * it works the same for one network and for the shipped ensemble (several
 * conv trunks averaged), where Grad-CAM has no single last conv layer.
 */
import * as tf from "@tensorflow/tfjs";
import { seededRandom } from "../util/random.ts";

export interface SaliencyOptions {
  /** Noisy copies averaged per image (1 = the plain gradient). */
  samples?: number;
  /** Standard deviation of the noise, in input units (images are 0..1). */
  noise?: number;
  seed?: number;
}

/**
 * Saliency maps [n, height, width] of `images` ([n, height, width, 1],
 * normalized as the model expects) for class `classes[i]` of image i (default:
 * its predicted class), each scaled to 0..1 by its own maximum.
 */
export async function saliencyMaps(
  model: tf.LayersModel,
  images: tf.Tensor4D,
  classes?: number[],
  options: SaliencyOptions = {},
): Promise<Float32Array> {
  const { samples = 8, noise = 0.1, seed = 1 } = options;
  const [n, height, width] = images.shape;
  const predicted = classes ? undefined : tf.tidy(() => (model.predict(images) as tf.Tensor).argMax(-1));
  const targets = classes ?? Array.from((await predicted!.data()) as Int32Array);
  predicted?.dispose();
  const random = seededRandom(seed);
  let total = tf.zeros([n, height, width, 1]);
  for (let s = 0; s < samples; s++) {
    const noisy = samples === 1
      ? images
      : tf.tidy(() =>
        images.add(tf.tensor(Float32Array.from({ length: images.size }, () => gaussian(random) * noise), images.shape))
      );
    const gradient = tf.tidy(() => {
      const mask = tf.oneHot(tf.tensor1d(targets, "int32"), model.outputs[0].shape[1] as number);
      const score = (x: tf.Tensor) => (model.apply(x, { training: false }) as tf.Tensor).mul(mask).sum();
      return tf.grad(score)(noisy).abs();
    });
    const next = total.add(gradient);
    tf.dispose([total, gradient, ...(noisy === images ? [] : [noisy])]);
    total = next;
  }
  const maps = tf.tidy(() => {
    const flat = total.reshape([n, height * width]);
    return flat.div(flat.max(1, true).add(1e-12)).reshape([n, height, width]);
  });
  const out = (await maps.data()) as Float32Array;
  tf.dispose([total, maps]);
  return out;
}

/** A standard normal sample (Box-Muller). */
function gaussian(random: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
}
