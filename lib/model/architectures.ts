/**
 * CNN architectures for 48x48 (or cropped) grayscale faces, in a small
 * registry: `buildModel("compact")`, `buildModel("vgg")`.
 */
import * as tf from "@tensorflow/tfjs";
import { NUM_CLASSES } from "../data/labels.ts";
import { batchNormalization, conv2d, dropout } from "./layers.ts";

/** What an architecture is: convolution blocks, then a dense head. */
export interface ArchSpec {
  description: string;
  /** Filters of each block; every block is `convsPerBlock` 3x3 convs + BN + ReLU, then 2x2 max-pool and dropout. */
  blockFilters: number[];
  convsPerBlock: number;
  /** Units of the hidden dense layer(s) before the 7-way softmax. */
  denseUnits: number[];
  /** Dropout after each conv block and before the output layer. */
  blockDropout: number;
  denseDropout: number;
}

export const ARCHITECTURES: Record<string, ArchSpec> = {
  compact: {
    description: "4 VGG blocks of two 3x3 convs (16-32-64-128), BN, global average pooling, dense 128",
    blockFilters: [16, 32, 64, 128],
    convsPerBlock: 2,
    denseUnits: [128],
    blockDropout: 0.1,
    denseDropout: 0.4,
  },
  medium: {
    description: "4 VGG blocks of two 3x3 convs (24-48-96-192), BN, global average pooling, dense 192",
    blockFilters: [24, 48, 96, 192],
    convsPerBlock: 2,
    denseUnits: [192],
    blockDropout: 0.1,
    denseDropout: 0.4,
  },
  "medium-wide": {
    description:
      "4 VGG blocks of two 3x3 convs (24-48-112-224), BN, global average pooling, dense 224: medium, last two wider",
    blockFilters: [24, 48, 112, 224],
    convsPerBlock: 2,
    denseUnits: [224],
    blockDropout: 0.1,
    denseDropout: 0.4,
  },
  "medium-wider": {
    description:
      "4 VGG blocks of two 3x3 convs (24-48-128-256), BN, global average pooling, dense 256: medium, last two wider still",
    blockFilters: [24, 48, 128, 256],
    convsPerBlock: 2,
    denseUnits: [256],
    blockDropout: 0.1,
    denseDropout: 0.4,
  },
  vgg: {
    description: "4 VGG blocks of two 3x3 convs (32-64-128-256), BN, global average pooling, dense 256",
    blockFilters: [32, 64, 128, 256],
    convsPerBlock: 2,
    denseUnits: [256],
    blockDropout: 0.15,
    denseDropout: 0.5,
  },
};

/** Names of the registered architectures. */
export function architectureNames(): string[] {
  return Object.keys(ARCHITECTURES);
}

/** Build an uncompiled model for inputs of `inputSize` x `inputSize` x 1 and `classes` outputs (default FER2013's). */
export function buildModel(arch: string, inputSize = 48, seed = 1, classes: number = NUM_CLASSES): tf.LayersModel {
  const input = tf.input({ shape: [inputSize, inputSize, 1], name: "image" });
  return tf.model({ inputs: input, outputs: applyArchitecture(arch, input, seed, classes), name: arch });
}

/**
 * The layers of `arch` applied to `input`, ending in a softmax over
 * `classes`; every layer name starts with `prefix` (so several networks can
 * share one model).
 */
function applyArchitecture(
  arch: string,
  input: tf.SymbolicTensor,
  seed: number,
  classes: number,
  prefix = "",
): tf.SymbolicTensor {
  const spec = ARCHITECTURES[arch];
  if (!spec) {
    throw new Error(`unknown architecture "${arch}"; choose one of: ${architectureNames().join(", ")}`);
  }
  let s = seed;
  const init = () => tf.initializers.heNormal({ seed: s++ });
  let x = input;
  spec.blockFilters.forEach((filters, b) => {
    for (let c = 0; c < spec.convsPerBlock; c++) {
      x = conv2d({
        filters,
        kernelSize: 3,
        padding: "same",
        useBias: false,
        kernelInitializer: init(),
        name: `${prefix}block${b + 1}_conv${c + 1}`,
      }).apply(x) as tf.SymbolicTensor;
      x = batchNormalization({ momentum: 0.9, name: `${prefix}block${b + 1}_bn${c + 1}` })
        .apply(x) as tf.SymbolicTensor;
      x = tf.layers.reLU({ name: `${prefix}block${b + 1}_relu${c + 1}` }).apply(x) as tf.SymbolicTensor;
    }
    x = tf.layers.maxPooling2d({ poolSize: 2, name: `${prefix}block${b + 1}_pool` }).apply(x) as tf.SymbolicTensor;
    x = dropout({ rate: spec.blockDropout, name: `${prefix}block${b + 1}_dropout` })
      .apply(x) as tf.SymbolicTensor;
  });
  x = tf.layers.globalAveragePooling2d({ name: `${prefix}pool` }).apply(x) as tf.SymbolicTensor;
  spec.denseUnits.forEach((units, i) => {
    x = tf.layers.dense({ units, activation: "relu", kernelInitializer: init(), name: `${prefix}dense${i + 1}` })
      .apply(x) as tf.SymbolicTensor;
  });
  x = dropout({ rate: spec.denseDropout, name: `${prefix}head_dropout` }).apply(x) as tf.SymbolicTensor;
  return tf.layers.dense({
    units: classes,
    activation: "softmax",
    kernelInitializer: init(),
    name: `${prefix}emotion`,
  })
    .apply(x) as tf.SymbolicTensor;
}

/**
 * One model that averages the class probabilities of trained `members`
 * (each built by `buildModel` with the given arch), holding copies of their
 * weights; layers of member i are prefixed `m{i}_`. Saved and loaded like
 * any other model, in Deno and in the browser.
 */
export function ensembleModel(members: { arch: string; model: tf.LayersModel }[]): tf.LayersModel {
  if (members.length < 2) throw new Error(`an ensemble needs at least 2 members, got ${members.length}`);
  const inputSize = members[0].model.inputs[0].shape[1] as number;
  const input = tf.input({ shape: [inputSize, inputSize, 1], name: "image" });
  const outputs = members.map(({ arch, model }, i) =>
    applyArchitecture(arch, input, 1, model.outputs[0].shape[1] as number, `m${i + 1}_`)
  );
  const ensemble = tf.model({
    inputs: input,
    outputs: tf.layers.average({ name: "emotion" }).apply(outputs) as tf.SymbolicTensor,
    name: `ensemble_${members.map((m) => m.arch).join("_")}`,
  });
  members.forEach(({ model }, i) => {
    for (const layer of model.layers) {
      if (layer.weights.length > 0) ensemble.getLayer(`m${i + 1}_${layer.name}`).setWeights(layer.getWeights());
    }
  });
  return ensemble;
}

/** `model.summary()` as text, ending with the parameter count. */
export function modelSummary(model: tf.LayersModel): string {
  const lines: string[] = [];
  model.summary(100, undefined, (line) => lines.push(line));
  return lines.join("\n");
}
