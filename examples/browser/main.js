import { EmotionRecognizer } from "/emotion-cnn.js"; // deno task build:browser; tfjs is the page's own

const tf = globalThis.tf;
tf.wasm.setWasmPaths("/vendor/wasm/");
await tf.setBackend("wasm");
const recognizer = await EmotionRecognizer.load({ tf }); // model/ and detector/ beside the module
const photo = document.getElementById("photo");
photo.src = new URLSearchParams(location.search).get("photo") ?? "/media/multi_face.jpg";
await photo.decode();
const faces = await recognizer.detect(photo);
document.getElementById("faces").textContent = faces.map((f) => `${f.emotion} at ${f.box}`).join("\n");
document.body.dataset.faces = JSON.stringify(faces);
