import { assert } from "../assert.ts";
import { cosineLr, EarlyStopping, inferMode, ReduceLROnPlateau } from "../../lib/train/schedules.ts";

Deno.test("inferMode: accuracy is maximized, loss minimized", () => {
  assert.equal(inferMode("val_accuracy"), "max");
  assert.equal(inferMode("val_loss"), "min");
});

Deno.test("EarlyStopping stops after `patience` epochs without improvement and remembers the best", () => {
  const es = new EarlyStopping({ monitor: "val_loss", patience: 2 });
  assert.deepEqual(es.update(1, 1.0), { improved: true, stop: false });
  assert.deepEqual(es.update(2, 0.8), { improved: true, stop: false });
  assert.deepEqual(es.update(3, 0.9), { improved: false, stop: false });
  assert.deepEqual(es.update(4, 0.85), { improved: false, stop: true });
  assert.equal(es.state.best, 0.8);
  assert.equal(es.state.bestEpoch, 2);
  assert.equal(es.restoreBestWeights, true);
});

Deno.test("EarlyStopping: changes smaller than minDelta do not count, patience resets on improvement", () => {
  const es = new EarlyStopping({ monitor: "val_accuracy", patience: 2, minDelta: 0.01 });
  es.update(1, 0.5);
  assert.equal(es.update(2, 0.505).improved, false);
  assert.equal(es.update(3, 0.52).improved, true);
  assert.equal(es.state.wait, 0);
  assert.equal(es.update(4, 0.521).stop, false);
  assert.equal(es.update(5, 0.5).stop, true);
  assert.equal(es.state.bestEpoch, 3);
});

Deno.test("EarlyStopping state round-trips through JSON (resume)", () => {
  const a = new EarlyStopping({ monitor: "val_loss", patience: 3 });
  a.update(1, 1);
  a.update(2, 2);
  const b = new EarlyStopping({ monitor: "val_loss", patience: 3 }, JSON.parse(JSON.stringify(a.state)));
  assert.deepEqual(b.update(3, 3), a.update(3, 3));
  assert.equal(b.update(4, 3).stop, true);
});

Deno.test("EarlyStopping rejects a non-finite metric", () => {
  const es = new EarlyStopping({ monitor: "val_loss", patience: 3 });
  assert.throws(() => es.update(1, NaN), /val_loss is NaN/);
});

Deno.test("ReduceLROnPlateau multiplies by factor after patience, never below minLr", () => {
  const r = new ReduceLROnPlateau({ monitor: "val_loss", patience: 2, factor: 0.5, minLr: 0.2 });
  let lr = 1;
  lr = r.update(1.0, lr);
  assert.equal(lr, 1);
  lr = r.update(1.1, lr);
  assert.equal(lr, 1);
  lr = r.update(1.2, lr);
  assert.equal(lr, 0.5);
  lr = r.update(1.3, lr);
  lr = r.update(1.3, lr);
  assert.equal(lr, 0.25);
  lr = r.update(1.3, lr);
  lr = r.update(1.3, lr);
  assert.equal(lr, 0.2);
  lr = r.update(1.3, lr);
  lr = r.update(1.3, lr);
  assert.equal(lr, 0.2);
});

Deno.test("ReduceLROnPlateau: improvement resets the wait; cooldown skips epochs after a cut", () => {
  const r = new ReduceLROnPlateau({ monitor: "val_accuracy", patience: 2, factor: 0.1, cooldown: 1 });
  let lr = 1;
  lr = r.update(0.5, lr);
  lr = r.update(0.4, lr);
  lr = r.update(0.6, lr); // improvement resets
  lr = r.update(0.6, lr);
  assert.equal(lr, 1);
  lr = r.update(0.6, lr);
  assert.ok(Math.abs(lr - 0.1) < 1e-12);
  lr = r.update(0.6, lr); // cooldown
  lr = r.update(0.6, lr);
  assert.ok(Math.abs(lr - 0.1) < 1e-12);
  lr = r.update(0.6, lr);
  assert.ok(Math.abs(lr - 0.01) < 1e-12);
});

Deno.test("ReduceLROnPlateau rejects a factor outside (0, 1)", () => {
  assert.throws(() => new ReduceLROnPlateau({ monitor: "val_loss", patience: 1, factor: 1.5 }), /factor/);
});

Deno.test("cosineLr falls from maxLr at the first epoch to minLr at the last, halfway at the middle", () => {
  assert.equal(cosineLr(1, 11, 1e-3, 1e-5), 1e-3);
  assert.ok(Math.abs(cosineLr(11, 11, 1e-3, 1e-5) - 1e-5) < 1e-12);
  assert.ok(Math.abs(cosineLr(6, 11, 1e-3, 1e-5) - (1e-3 + 1e-5) / 2) < 1e-12);
  const rates = Array.from({ length: 11 }, (_, i) => cosineLr(i + 1, 11, 1e-3, 1e-5));
  rates.slice(1).forEach((lr, i) => assert.ok(lr < rates[i], `epoch ${i + 2} should be below epoch ${i + 1}`));
  assert.equal(cosineLr(1, 1, 1e-3), 1e-3);
});
