import { EmotionRecognizer } from "/emotion-cnn.js"; // model/ and detector/ beside it, or URLs given to load

tf.wasm.setWasmPaths("/vendor/wasm/");
await tf.setBackend("wasm");
const recognizer = await EmotionRecognizer.load({ tf }); // tfjs is the page's own
const photo = document.querySelector("img"), faces = await photo.decode().then(() => recognizer.detect(photo));
document.body.dataset.faces = JSON.stringify(faces); // detect takes a canvas, video, ImageBitmap or Blob too
