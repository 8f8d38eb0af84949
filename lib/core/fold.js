/**
 * BatchNorm folding, for prediction in Deno and in the browser alike: a
 * trained model rebuilt so that each convolution followed by batch
 * normalization (and ReLU) is one convolution with a bias and the ReLU
 * fused in, and dropout is gone. The folded model gives the same
 * probabilities (to float rounding) in one kernel per convolution instead of
 * three; it is for inference only (its layers are not the saved ones, so
 * never train, average or save it in place of the original). Its `predict`
 * runs each layer's op directly on the whole batch (`directPredict`),
 * without tfjs-layers' bookkeeping per layer and its 32-image chunks: a
 * quarter of a batch-1 call.
 *
 * For a convolution w (bias b, or none) and normalization with gamma, beta,
 * moving mean mu and variance v: s = gamma / sqrt(v + epsilon), w' = w * s
 * per output channel, b' = (b - mu) * s + beta.
 */

/**
 * The one layer that consumes `layer`'s output, or undefined when none or several do.
 * @param {any} layer
 */
function soleConsumer(layer) {
  const nodes = layer.outboundNodes;
  return nodes.length === 1 ? nodes[0].outboundLayer : undefined;
}

/**
 * The names of the layers whose outputs `layer` takes (each layer of our models is applied once).
 * @param {any} layer
 * @returns {string[]}
 */
function inboundNames(layer) {
  return layer.inboundNodes[0].inboundLayers.map((l) => l.name);
}

/**
 * Whether `layer` is a plain ReLU (a ReLU layer without a cap, or an Activation layer of relu).
 * @param {any} layer
 */
function isRelu(layer) {
  const name = layer.getClassName();
  const config = layer.getConfig();
  return (name === "ReLU" && config.maxValue == null) || (name === "Activation" && config.activation === "relu");
}

/**
 * The batch normalization, and the ReLU after it, that `conv` can absorb:
 * its sole consumer normalizing the last (channel) axis, the conv without an
 * activation of its own.
 * @param {any} conv
 * @returns {{ norm: any; relu?: any } | undefined}
 */
function foldable(conv) {
  if (conv.getClassName() !== "Conv2D" || conv.getConfig().activation !== "linear") return undefined;
  if (conv.getConfig().dataFormat !== "channelsLast") return undefined;
  const norm = soleConsumer(conv);
  if (!norm || norm.getClassName() !== "BatchNormalization") return undefined;
  const axis = norm.getConfig().axis;
  if (axis !== -1 && axis !== 3) return undefined;
  const next = soleConsumer(norm);
  return next && isRelu(next) ? { norm, relu: next } : { norm };
}

/**
 * The folded kernel and bias of a convolution and its batch normalization.
 * @param {any} tf the tfjs module
 * @param {any} conv
 * @param {any} norm
 * @returns {any[]} [kernel, bias] tensors
 */
function foldedWeights(tf, conv, norm) {
  const { center, scale, epsilon } = norm.getConfig();
  const [kernel, convBias] = conv.getWeights();
  const normWeights = norm.getWeights();
  let i = 0;
  const gamma = scale ? normWeights[i++] : undefined;
  const beta = center ? normWeights[i++] : undefined;
  const mean = normWeights[i++];
  const variance = normWeights[i++];
  // Tensor ops only, no synchronous read: WebGPU in Deno has none.
  return tf.tidy(() => {
    const factor = gamma ? tf.rsqrt(variance.add(epsilon)).mul(gamma) : tf.rsqrt(variance.add(epsilon));
    const shifted = (convBias ? convBias.sub(mean) : mean.neg()).mul(factor);
    return [kernel.mul(factor), beta ? shifted.add(beta) : shifted];
  });
}

/**
 * The op `layer` computes, on concrete tensors (its inputs: one tensor, or a
 * list for a merge), with the layer's weights as they are now; a layer
 * without a direct op here goes through its own `apply`.
 * @param {any} tf the tfjs module
 * @param {any} layer
 * @returns {(input: any) => any}
 */
function layerOp(tf, layer) {
  const config = layer.getConfig();
  const [kernel, bias] = layer.getWeights();
  const channelsLast = config.dataFormat === undefined || config.dataFormat === "channelsLast";
  const activation = config.activation;
  switch (layer.getClassName()) {
    case "Conv2D":
      if (channelsLast && (activation === "linear" || activation === "relu")) {
        return (x) =>
          tf.fused.conv2d({
            x,
            filter: kernel,
            strides: config.strides,
            pad: config.padding,
            dilations: config.dilationRate,
            bias,
            activation,
          });
      }
      break;
    case "MaxPooling2D":
      if (channelsLast) return (x) => tf.maxPool(x, config.poolSize, config.strides, config.padding);
      break;
    case "GlobalAveragePooling2D":
      if (channelsLast && !config.keepDims) return (x) => tf.mean(x, [1, 2]);
      break;
    case "Dense":
      if (activation === "linear" || activation === "relu" || activation === "softmax") {
        return (x) => {
          if (x.rank !== 2) return layer.apply(x);
          const y = tf.fused.matMul({ a: x, b: kernel, bias, activation: activation === "relu" ? "relu" : "linear" });
          return activation === "softmax" ? tf.softmax(y) : y;
        };
      }
      break;
    case "Average":
      return (xs) => tf.div(tf.addN(xs), xs.length);
  }
  return (input) => layer.apply(input);
}

/**
 * A predict function for `model` (one input, one output) that runs its
 * layers' ops in order on the whole batch, in one tidy.
 * @param {any} tf the tfjs module
 * @param {any} model a tfjs LayersModel
 * @returns {(x: any) => any}
 */
function directPredict(tf, model) {
  const steps = model.layers.filter((layer) => layer.getClassName() !== "InputLayer").map((layer) => ({
    name: layer.name,
    inputs: inboundNames(layer),
    op: layerOp(tf, layer),
  }));
  const input = model.inputLayers[0].name, output = model.outputLayers[0].name;
  return (x) =>
    tf.tidy(() => {
      const values = new Map([[input, Array.isArray(x) ? x[0] : x]]);
      for (const { name, inputs, op } of steps) {
        const args = inputs.map((n) => values.get(n));
        values.set(name, op(args.length === 1 ? args[0] : args));
      }
      return values.get(output);
    });
}

/**
 * `model` rebuilt for prediction: BatchNorm (and a following ReLU) folded
 * into each convolution that feeds it alone, dropout removed, every other
 * layer copied with its weights, and `predict` replaced by
 * `directPredict`. The original is left as it is.
 * @param {any} tf the tfjs module the model runs on
 * @param {any} model a tfjs LayersModel with one input
 * @returns {any} a new LayersModel
 */
export function foldBatchNorm(tf, model) {
  /** @type {Map<string, any>} each original layer's output in the new graph */
  const outputs = new Map();
  /** @type {Set<string>} layers absorbed into a convolution */
  const absorbed = new Set();
  for (const layer of model.layers) {
    if (absorbed.has(layer.name)) continue;
    if (layer.getClassName() === "InputLayer") {
      outputs.set(layer.name, tf.input({ batchShape: layer.batchInputShape, name: layer.name }));
      continue;
    }
    const inbound = inboundNames(layer).map((name) => outputs.get(name));
    const input = inbound.length === 1 ? inbound[0] : inbound;
    if (layer.getClassName() === "Dropout") {
      outputs.set(layer.name, input);
      continue;
    }
    const fold = foldable(layer);
    if (fold) {
      const conv = tf.layers.conv2d({
        ...layer.getConfig(),
        useBias: true,
        activation: fold.relu ? "relu" : "linear",
      });
      const output = conv.apply(input); // applying builds the layer, so its weights can be set now
      const merged = foldedWeights(tf, layer, fold.norm);
      conv.setWeights(merged);
      tf.dispose(merged);
      for (const done of [layer, fold.norm, fold.relu].filter(Boolean)) {
        outputs.set(done.name, output);
        absorbed.add(done.name);
      }
      continue;
    }
    const copy = layer.constructor.fromConfig(layer.constructor, layer.getConfig());
    outputs.set(layer.name, copy.apply(input));
    if (layer.weights.length > 0) copy.setWeights(layer.getWeights());
  }
  const folded = tf.model({
    inputs: model.inputLayers.map((l) => outputs.get(l.name)),
    outputs: model.outputLayers.map((l) => outputs.get(l.name)),
    name: model.name,
  });
  folded.predict = directPredict(tf, folded);
  return folded;
}
