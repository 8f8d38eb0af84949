/**
 * A saved model as ONNX (IR version 8, opset 13), for onnxruntime and every
 * other runtime: BatchNorm folded (fold.js), the input the face crop's gray
 * values 0-255 as float32 [N, size, size, 1] (NHWC), and everything predict
 * applies inside the graph: the normalization, the layers, an ensemble's
 * mean, the calibration temperature. The output is the probabilities
 * predict prints. The class labels, input size, temperature and version go
 * into `metadata_props`. The protobuf is written here (onnx.proto's
 * field numbers), so no ONNX library is needed to export.
 *
 * Layer mapping (tfjs layer class -> ONNX operators; `LAYER_OPS`):
 *   InputLayer -> the graph input, then Mul, Add (normalization), Transpose to NCHW
 *   Conv2D (BatchNorm folded in; linear or ReLU) -> Conv (+ Relu)
 *   BatchNormalization (one that could not be folded) -> BatchNormalization
 *   ReLU, Activation(relu) -> Relu
 *   MaxPooling2D -> MaxPool
 *   Dropout -> nothing (prediction)
 *   GlobalAveragePooling2D -> GlobalAveragePool, Flatten
 *   Dense (linear, ReLU or softmax) -> Gemm (+ Relu or Softmax)
 *   Average (an ensemble's mean) -> Mean
 *   the temperature T, when not 1 -> Clip, Log, Div, Softmax
 * Any other layer is refused, naming it, and nothing is written.
 */
import type * as tf from "@tensorflow/tfjs";
import type { LoadedModel } from "./model_io.ts";
import { toFloat16 } from "./model_io.ts";

/** The tfjs layer classes the export maps, and the ONNX operators each becomes. */
export const LAYER_OPS: Record<string, string> = {
  InputLayer: "graph input; Mul, Add (normalization); Transpose (NHWC to NCHW)",
  Conv2D: "Conv (+ Relu)",
  BatchNormalization: "BatchNormalization",
  ReLU: "Relu",
  Activation: "Relu (relu only)",
  MaxPooling2D: "MaxPool",
  Dropout: "none (prediction)",
  GlobalAveragePooling2D: "GlobalAveragePool, Flatten",
  Dense: "Gemm (+ Relu or Softmax)",
  Average: "Mean",
};

/** The ONNX IR version written (Debian's onnx 1.12 checker rejects IR 9) and the opset. */
export const ONNX_IR_VERSION = 8;
export const ONNX_OPSET = 13;

// ---------------------------------------------------------------- protobuf writing

/** Protobuf bytes, built field by field (wire types: 0 varint, 2 length-delimited, 5 32-bit). */
class Proto {
  private readonly parts: Uint8Array[] = [];

  private push(bytes: number[] | Uint8Array): this {
    this.parts.push(bytes instanceof Uint8Array ? bytes : Uint8Array.from(bytes));
    return this;
  }

  private tag(field: number, wire: number): this {
    return this.push(varint(BigInt(field * 8 + wire)));
  }

  /** An int64/int32/enum field. */
  int(field: number, value: number): this {
    return this.tag(field, 0).push(varint(BigInt.asUintN(64, BigInt(value))));
  }

  /** A float field (fixed 32 bits). */
  float(field: number, value: number): this {
    const bytes = new Uint8Array(4);
    new DataView(bytes.buffer).setFloat32(0, value, true);
    return this.tag(field, 5).push(bytes);
  }

  /** A bytes field. */
  bytes(field: number, value: Uint8Array): this {
    return this.tag(field, 2).push(varint(BigInt(value.length))).push(value);
  }

  /** A string field. */
  string(field: number, value: string): this {
    return this.bytes(field, new TextEncoder().encode(value));
  }

  /** An embedded message field. */
  message(field: number, value: Proto): this {
    return this.bytes(field, value.finish());
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const part of this.parts) {
      out.set(part, at);
      at += part.length;
    }
    return out;
  }
}

function varint(value: bigint): number[] {
  const out: number[] = [];
  do {
    let byte = Number(value & 0x7fn);
    value >>= 7n;
    if (value) byte |= 0x80;
    out.push(byte);
  } while (value);
  return out;
}

// onnx.proto's enums and field numbers.
const FLOAT = 1, FLOAT16 = 10;
const ATTR_FLOAT = 1, ATTR_INT = 2, ATTR_INTS = 7;

type Attribute = number | number[] | { float: number };

/** An ONNX attribute: an int, a list of ints, or a float. */
function attribute(name: string, value: Attribute): Proto {
  const proto = new Proto().string(1, name);
  if (Array.isArray(value)) {
    for (const v of value) proto.int(8, v);
    return proto.int(20, ATTR_INTS);
  }
  if (typeof value === "object") return proto.float(2, value.float).int(20, ATTR_FLOAT);
  return proto.int(3, value).int(20, ATTR_INT);
}

/** A tensor type with a shape (a string is a symbolic dimension). */
function valueInfo(name: string, shape: (number | string)[]): Proto {
  const dims = new Proto();
  for (const d of shape) dims.message(1, typeof d === "string" ? new Proto().string(2, d) : new Proto().int(1, d));
  const tensorType = new Proto().int(1, FLOAT).message(2, dims);
  return new Proto().string(1, name).message(2, new Proto().message(1, tensorType));
}

// ---------------------------------------------------------------- the graph

/** The graph being built: nodes, initializers and unique names. */
class Graph {
  readonly nodes: Proto[] = [];
  readonly initializers: Proto[] = [];
  private count = 0;

  constructor(private readonly float16: boolean) {}

  /** A fresh value name. */
  name(hint: string): string {
    return `${hint}_${this.count++}`;
  }

  /** Add a node; returns its (first) output's name. */
  node(op: string, inputs: string[], attributes: Record<string, Attribute> = {}, output = this.name(op)): string {
    const proto = new Proto();
    for (const input of inputs) proto.string(1, input);
    proto.string(2, output).string(3, this.name(`${op}_node`)).string(4, op);
    for (const [key, value] of Object.entries(attributes)) proto.message(5, attribute(key, value));
    this.nodes.push(proto);
    return output;
  }

  /** A float constant (stored as float16 and cast back to float32 when exporting --float16). */
  constant(hint: string, values: Float32Array, dims: number[]): string {
    const name = this.name(hint);
    const half = this.float16 && values.length > 1;
    const raw = half ? new Uint8Array(toFloat16(values).buffer) : new Uint8Array(values.slice().buffer);
    const tensor = new Proto();
    for (const d of dims) tensor.int(1, d);
    tensor.int(2, half ? FLOAT16 : FLOAT).string(8, half ? `${name}_f16` : name).bytes(9, raw);
    this.initializers.push(tensor);
    return half ? this.node("Cast", [`${name}_f16`], { to: FLOAT }, name) : name;
  }
}

/** A layer's weights as plain arrays (read asynchronously: WebGPU has no synchronous read). */
async function weightsOf(layer: tf.layers.Layer): Promise<{ values: Float32Array; shape: number[] }[]> {
  return await Promise.all(
    layer.getWeights().map(async (w) => ({ values: new Float32Array(await w.data()), shape: w.shape })),
  );
}

/** HWIO (tfjs) to OIHW (ONNX) for a conv kernel. */
function oihw(values: Float32Array, [h, w, i, o]: number[]): Float32Array {
  const out = new Float32Array(values.length);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      for (let c = 0; c < i; c++) {
        for (let k = 0; k < o; k++) out[((k * i + c) * h + y) * w + x] = values[((y * w + x) * i + c) * o + k];
      }
    }
  }
  return out;
}

/** The ONNX "pads" of a tfjs padding for a square kernel at stride 1 ("same": half the kernel each side). */
function pads(padding: string, kernel: number[], strides: number[]): number[] {
  if (padding === "valid") return [0, 0, 0, 0];
  if (strides.some((s) => s !== 1) || kernel.some((k) => k % 2 === 0)) {
    throw new Error(`padding "same" with kernel ${kernel} and strides ${strides}`);
  }
  const [h, w] = kernel.map((k) => (k - 1) / 2);
  return [h, w, h, w];
}

/** One layer's nodes, from its input value(s); returns its output value. */
async function layerNodes(graph: Graph, layer: tf.layers.Layer, input: string | string[]): Promise<string> {
  const config = layer.getConfig() as Record<string, unknown>;
  const className = layer.getClassName();
  const x = input as string;
  const activation = config.activation as string | undefined;
  const activate = (value: string) => {
    if (!activation || activation === "linear") return value;
    if (activation === "relu") return graph.node("Relu", [value]);
    if (activation === "softmax") return graph.node("Softmax", [value], { axis: 1 });
    throw new Error(`activation "${activation}"`);
  };
  if (config.dataFormat && config.dataFormat !== "channelsLast") throw new Error(`data format ${config.dataFormat}`);
  switch (className) {
    case "Conv2D": {
      const [kernel, bias] = await weightsOf(layer);
      const size = kernel.shape.slice(0, 2), strides = config.strides as number[];
      const dilations = config.dilationRate as number[] | number | undefined;
      if (Array.isArray(dilations) ? dilations.some((d) => d !== 1) : dilations && dilations !== 1) {
        throw new Error("dilated convolution");
      }
      const w = graph.constant(`${layer.name}_kernel`, oihw(kernel.values, kernel.shape), [
        kernel.shape[3],
        kernel.shape[2],
        ...size,
      ]);
      const inputs = [x, w, ...(bias ? [graph.constant(`${layer.name}_bias`, bias.values, bias.shape)] : [])];
      const conv = graph.node("Conv", inputs, {
        kernel_shape: size,
        strides,
        pads: pads(config.padding as string, size, strides),
      });
      return activate(conv);
    }
    case "BatchNormalization": {
      const { center, scale, epsilon } = config as { center: boolean; scale: boolean; epsilon: number };
      const weights = await weightsOf(layer);
      let i = 0;
      const channels = weights.at(-1)!.shape[0];
      const gamma = scale ? weights[i++].values : new Float32Array(channels).fill(1);
      const beta = center ? weights[i++].values : new Float32Array(channels);
      const [mean, variance] = [weights[i++].values, weights[i++].values];
      const inputs = [gamma, beta, mean, variance].map((v, k) => graph.constant(`${layer.name}_${k}`, v, [channels]));
      return graph.node("BatchNormalization", [x, ...inputs], { epsilon: { float: epsilon } });
    }
    case "ReLU":
      if (config.maxValue !== null && config.maxValue !== undefined) throw new Error("ReLU with a maxValue");
      return graph.node("Relu", [x]);
    case "Activation":
      return activate(x);
    case "MaxPooling2D": {
      const size = config.poolSize as number[], strides = (config.strides as number[] | null) ?? size;
      return graph.node("MaxPool", [x], {
        kernel_shape: size,
        strides,
        pads: pads(config.padding as string, size, strides),
      });
    }
    case "Dropout":
      return x;
    case "GlobalAveragePooling2D":
      return graph.node("Flatten", [graph.node("GlobalAveragePool", [x])], { axis: 1 });
    case "Dense": {
      const [kernel, bias] = await weightsOf(layer);
      const inputs = [x, graph.constant(`${layer.name}_kernel`, kernel.values, kernel.shape)];
      if (bias) inputs.push(graph.constant(`${layer.name}_bias`, bias.values, bias.shape));
      return activate(graph.node("Gemm", inputs));
    }
    case "Average":
      return graph.node("Mean", input as string[]);
  }
  throw new Error(`no ONNX mapping`);
}

/** Names of the layers whose outputs feed `layer`. */
function inbound(layer: tf.layers.Layer): string[] {
  // deno-lint-ignore no-explicit-any
  const nodes = (layer as any).inboundNodes as { inboundLayers: tf.layers.Layer[] }[];
  return nodes.flatMap((node) => node.inboundLayers.map((l) => l.name));
}

/** What `exportOnnx` takes besides the model. */
export interface OnnxOptions {
  /** Store the weights as half-precision floats (cast to float32 in the graph): half the file. */
  float16?: boolean;
}

/**
 * The ONNX file of a loaded model (BatchNorm folded: `loadModel(dir, { fold:
 * true })`, or unfolded, which exports its BatchNormalization layers as
 * they are). A layer without an ONNX mapping is an error naming it.
 */
export async function exportOnnx(loaded: LoadedModel, options: OnnxOptions = {}): Promise<Uint8Array> {
  const { model, metadata } = loaded;
  const graph = new Graph(options.float16 ?? false);
  const size = metadata.inputSize;
  const values = new Map<string, string>();
  const unknown = model.layers.filter((l) => !(l.getClassName() in LAYER_OPS));
  if (unknown.length) {
    const named = unknown.map((l) => `${l.name} (${l.getClassName()})`).join(", ");
    throw new Error(`cannot export to ONNX: no mapping for layer ${named}`);
  }
  for (const layer of model.layers) {
    if (layer.getClassName() === "InputLayer") {
      const { scale, offset } = metadata.normalization;
      const scaled = graph.node("Mul", ["pixels", graph.constant("scale", Float32Array.of(scale), [])]);
      const shifted = graph.node("Add", [scaled, graph.constant("offset", Float32Array.of(offset), [])]);
      values.set(layer.name, graph.node("Transpose", [shifted], { perm: [0, 3, 1, 2] }));
      continue;
    }
    const inputs = inbound(layer).map((name) => values.get(name)!);
    try {
      values.set(layer.name, await layerNodes(graph, layer, inputs.length === 1 ? inputs[0] : inputs));
    } catch (error) {
      throw new Error(
        `cannot export to ONNX: layer ${layer.name} (${layer.getClassName()}): ${(error as Error).message}`,
      );
    }
  }
  let output = values.get(model.outputLayers[0].name)!;
  const temperature = metadata.temperature ?? 1;
  if (temperature !== 1) {
    const floor = graph.constant("floor", Float32Array.of(1e-12), []);
    const logits = graph.node("Log", [graph.node("Clip", [output, floor])]);
    const scaled = graph.node("Div", [logits, graph.constant("temperature", Float32Array.of(temperature), [])]);
    output = graph.node("Softmax", [scaled], { axis: 1 });
  }
  graph.node("Identity", [output], {}, "probabilities");

  const body = new Proto();
  for (const node of graph.nodes) body.message(1, node);
  body.string(2, model.name || "emotion-cnn");
  for (const tensor of graph.initializers) body.message(5, tensor);
  body.message(11, valueInfo("pixels", ["N", size, size, 1]));
  body.message(12, valueInfo("probabilities", ["N", metadata.labels.length]));
  const props: Record<string, string> = {
    labels: JSON.stringify(metadata.labels),
    input_size: String(size),
    input: "gray pixel values 0-255, float32 [N, size, size, 1] (NHWC)",
    temperature: String(temperature),
    model_version: metadata.version ?? "",
    architecture: metadata.architecture,
  };
  const file = new Proto()
    .int(1, ONNX_IR_VERSION)
    .string(2, "emotion-cnn")
    .string(3, "0.1.0")
    .message(7, body)
    .message(8, new Proto().string(1, "").int(2, ONNX_OPSET));
  for (const [key, value] of Object.entries(props)) file.message(14, new Proto().string(1, key).string(2, value));
  return file.finish();
}
